/* CPU feature detection and a memory read-bandwidth probe (see cpu.h).
 * Knows nothing about models or kernels. */
#include "engine/cpu.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

void cpu_detect(cpu_features *f) {
  memset(f, 0, sizeof *f);
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  f->avx2 = __builtin_cpu_supports("avx2");
  f->fma = __builtin_cpu_supports("fma");
  /* f16c has no __builtin_cpu_supports name on older compilers; every CPU
   * with AVX2 and FMA has it (Haswell/Piledriver onwards). */
  f->f16c = f->avx2 && f->fma;
  f->avx512f = __builtin_cpu_supports("avx512f");
  f->avx512bw = __builtin_cpu_supports("avx512bw");
  f->avx512vl = __builtin_cpu_supports("avx512vl");
  f->avx512dq = __builtin_cpu_supports("avx512dq");
  f->avx512vnni = __builtin_cpu_supports("avx512vnni");
  f->avxvnni = __builtin_cpu_supports("avxvnni");
  f->avx512bf16 = __builtin_cpu_supports("avx512bf16");
#endif
}

int cpu_n_cpus(void) {
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n < 1 ? 1 : (int)n;
}

/* ---- read bandwidth ------------------------------------------------------ */

typedef struct {
  const uint64_t *p;
  size_t n; /* words */
  uint64_t sink;
} bw_job;

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Sums the words with 8 independent accumulators (vectorized by the
 * compiler) so the loop is bound by memory, not by the add chain. */
static uint64_t read_words_plain(const uint64_t *p, size_t n) {
  uint64_t a[8] = {0};
  size_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; j++)
      a[j] += p[i + j];
  for (; i < n; i++)
    a[0] += p[i];
  uint64_t s = 0;
  for (int j = 0; j < 8; j++)
    s += a[j];
  return s;
}

#if defined(__x86_64__)
#include <immintrin.h>
/* The same with 32-byte loads and software prefetch 8 KiB ahead: the way
 * the decode kernels stream weights, so the probe is not the slower one. */
__attribute__((target("avx2"))) static uint64_t
read_words_avx2(const uint64_t *p, size_t n) {
  __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __builtin_prefetch(p + i + 1024, 0, 0);
    __builtin_prefetch(p + i + 1032, 0, 0);
    a0 = _mm256_add_epi64(a0, _mm256_loadu_si256((const __m256i *)(p + i)));
    a1 = _mm256_add_epi64(a1, _mm256_loadu_si256((const __m256i *)(p + i + 4)));
    a2 = _mm256_add_epi64(a2, _mm256_loadu_si256((const __m256i *)(p + i + 8)));
    a3 =
        _mm256_add_epi64(a3, _mm256_loadu_si256((const __m256i *)(p + i + 12)));
  }
  a0 = _mm256_add_epi64(_mm256_add_epi64(a0, a1), _mm256_add_epi64(a2, a3));
  uint64_t t[4];
  _mm256_storeu_si256((__m256i *)t, a0);
  return t[0] + t[1] + t[2] + t[3] + read_words_plain(p + i, n - i);
}
#endif

static uint64_t read_words(const uint64_t *p, size_t n) {
#if defined(__x86_64__)
  if (__builtin_cpu_supports("avx2"))
    return read_words_avx2(p, n);
#endif
  return read_words_plain(p, n);
}

static void *bw_thread(void *v) {
  bw_job *j = v;
  j->sink += read_words(j->p, j->n);
  return NULL;
}

/* One timed pass: nt threads (the caller is one) each read their share.
 * Returns seconds, or -1 when a thread could not be started. */
static double bw_pass(bw_job *jobs, int nt) {
  pthread_t th[64];
  int ok = 1, started = 1;
  double t0 = now_s();
  for (; started < nt; started++)
    if (pthread_create(&th[started], NULL, bw_thread, &jobs[started])) {
      ok = 0;
      break;
    }
  bw_thread(&jobs[0]);
  for (int t = 1; t < started; t++)
    pthread_join(th[t], NULL);
  double dt = now_s() - t0;
  return ok ? dt : -1;
}

double cpu_measure_read_bandwidth_gbs_n(int nt) {
  enum { MAXT = 64, PASSES = 6 };
  const size_t bytes = (size_t)256 << 20; /* far beyond any L3 */
  if (nt < 1)
    nt = 1;
  if (nt > MAXT)
    nt = MAXT;
  uint64_t *buf = aligned_alloc(64, bytes);
  if (!buf)
    return -1;
  size_t words = bytes / sizeof *buf;
  for (size_t i = 0; i < words; i++)
    buf[i] = i; /* fault pages in */
  bw_job jobs[MAXT];
  size_t per = words / (size_t)nt;
  for (int t = 0; t < nt; t++)
    jobs[t] = (bw_job){buf + per * (size_t)t, per, 0};
  double best = -1;
  for (int r = 0; r < PASSES; r++) {
    double dt = bw_pass(jobs, nt);
    if (dt < 0) {
      best = -1;
      break;
    }
    if (best < 0 || dt < best)
      best = dt;
  }
  volatile uint64_t keep = jobs[0].sink;
  (void)keep;
  free(buf);
  return best > 0 ? (double)(per * (size_t)nt * sizeof *buf) / best / 1e9 : -1;
}

double cpu_measure_read_bandwidth_gbs(void) {
  return cpu_measure_read_bandwidth_gbs_n(cpu_n_cpus());
}
