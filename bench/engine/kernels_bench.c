/* Kernel micro-benchmark: matrix x vector (decode) throughput per weight type
 * in GB/s of weights streamed, at 1 and 2 threads, next to the machine's
 * measured read bandwidth in the same run; and matrix x matrix (prefill)
 * throughput in GOP/s, next to the same work done one vec_dot per
 * (row, token) as the reference. Prints ratios, never asserts on them.
 * Build (from the repository root, after `make build/libengine.a`):
 *   cc -O2 -std=c11 -D_GNU_SOURCE -Isrc -o build/kernels_bench \
 *      bench/engine/kernels_bench.c build/libengine.a -lm -pthread
 * Run: build/kernels_bench [type ...]   (default: q8_0 q4_K q6_K f16)
 * KB_PREFILL_ONLY=1 skips the matvec (bandwidth) part. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/cpu.h"
#include "engine/kernels.h"
#include "engine/quant.h"
#include "engine/threadpool.h"

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* CPU time of the calling thread: single-threaded compute-bound runs are
 * timed with it, so other processes sharing the cores do not skew them. */
static double cpu_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void fill_random(float *x, int64_t n, unsigned seed) {
  for (int64_t i = 0; i < n; i++) {
    seed = seed * 1103515245u + 12345u;
    x[i] = (float)((seed >> 8) & 0xffff) / 32768.0f - 1.0f;
  }
}

/* A weight matrix of `type`, rows x cols, quantized from random floats
 * (quantizing row 0 and copying it keeps start-up fast; the bytes still
 * stream from memory). */
static void *make_matrix(int type, int64_t rows, int64_t cols) {
  size_t rs = qtype_row_size(type, cols);
  unsigned char *w = malloc(rs * (size_t)rows);
  float *tmp = malloc(sizeof(float) * (size_t)cols);
  if (!w || !tmp)
    exit(1);
  for (int64_t r = 0; r < rows; r++) {
    if (r < 64) {
      fill_random(tmp, cols, (unsigned)r + 1);
      q_quant_row(type, tmp, w + rs * (size_t)r, cols);
    } else {
      memcpy(w + rs * (size_t)r, w + rs * (size_t)(r % 64), rs);
    }
  }
  free(tmp);
  return w;
}

/* Decode: GB/s of weight bytes, best of several passes over a matrix far
 * larger than the caches. */
static double bench_matvec(tpool *p, int type, void *W, int64_t rows,
                           int64_t cols, const float *x, float *y) {
  double best = 1e30;
  for (int r = 0; r < 5; r++) {
    double t0 = now_s();
    k_matmul(p, type, W, rows, cols, x, 1, y);
    double dt = now_s() - t0;
    if (dt < best)
      best = dt;
  }
  return (double)qtype_row_size(type, cols) * (double)rows / best / 1e9;
}

/* Decode kernel speed without the memory wall: GB/s of a matvec over a
 * matrix that stays in L2 (~512 KB), single-threaded, in thread CPU time.
 * Decode is memory-bound only while this is well above the bandwidth. */
static double bench_matvec_l2(int type) {
  int64_t cols = 2048;
  int64_t rows = (int64_t)(512e3 / (double)qtype_row_size(type, cols));
  rows -= rows % 16;
  void *W = make_matrix(type, rows, cols);
  float *x = malloc(sizeof(float) * cols), *y = malloc(sizeof(float) * rows);
  fill_random(x, cols, 5);
  double best = 1e30;
  for (int r = 0; r < 20; r++) {
    double t0 = cpu_s();
    for (int k = 0; k < 10; k++)
      k_matmul(NULL, type, W, rows, cols, x, 1, y);
    double dt = (cpu_s() - t0) / 10;
    if (dt < best)
      best = dt;
  }
  free(W), free(x), free(y);
  return (double)qtype_row_size(type, cols) * (double)rows / best / 1e9;
}

typedef struct {
  int type;
  const unsigned char *W;
  int64_t rows, cols, n_tok;
  const unsigned char *Xq;
  float *Y;
} naive_job;

static void naive_worker(void *arg, int ith, int nth) {
  naive_job *j = arg;
  size_t wr = qtype_row_size(j->type, j->cols),
         xr = k_act_row_size(j->type, j->cols);
  long long r0, r1;
  tpool_split(j->rows, ith, nth, 16, &r0, &r1);
  for (int64_t t = 0; t < j->n_tok; t++)
    for (long long r = r0; r < r1; r++)
      k_vec_dot(j->type, (int)j->cols, &j->Y[t * j->rows + r], j->W + wr * r,
                j->Xq + xr * t);
}

/* Prefill: GOP/s (2 ops per multiply-add) of k_matmul vs one vec_dot per
 * (row, token), single-threaded, in thread CPU time. */
static void bench_prefill(tpool *p, int type, int64_t rows, int64_t cols,
                          int64_t n_tok, double *tiled, double *naive) {
  void *W = make_matrix(type, rows, cols);
  float *X = malloc(sizeof(float) * (size_t)(cols * n_tok));
  float *Y = malloc(sizeof(float) * (size_t)(rows * n_tok));
  unsigned char *Xq = malloc(k_act_row_size(type, cols) * (size_t)n_tok);
  fill_random(X, cols * n_tok, 7);
  k_quantize_rows(p, type, X, n_tok, cols, Xq);
  double ops = 2.0 * (double)rows * (double)cols * (double)n_tok;
  double bt = 1e30, bn = 1e30;
  for (int r = 0; r < 2; r++) {
    double t0 = cpu_s();
    k_matmul(p, type, W, rows, cols, X, n_tok, Y);
    double t1 = cpu_s();
    naive_job j = {type, W, rows, cols, n_tok, Xq, Y};
    tpool_run(p, naive_worker, &j);
    double t2 = cpu_s();
    if (t1 - t0 < bt)
      bt = t1 - t0;
    if (t2 - t1 < bn)
      bn = t2 - t1;
  }
  *tiled = ops / bt / 1e9;
  *naive = ops / bn / 1e9;
  free(W), free(X), free(Y), free(Xq);
}

int main(int argc, char **argv) {
  const char *def[] = {"q8_0", "q4_K", "q6_K", "f16"};
  int nt = argc > 1 ? argc - 1 : 4;
  k_init();
  /* KB_PREFILL_ONLY=1: skip the (memory-bound, slow) matvec part */
  int prefill_only = getenv("KB_PREFILL_ONLY") != NULL;
  printf("simd path: %s\n", k_simd_name(k_simd()));
  double bw1 = prefill_only ? 1 : cpu_measure_read_bandwidth_gbs_n(1);
  double bw2 = prefill_only ? 1 : cpu_measure_read_bandwidth_gbs_n(2);
  printf("read bandwidth: %.1f GB/s (1 thread), %.1f GB/s (2 threads)\n", bw1,
         bw2);
  tpool *p1 = tpool_create(1), *p2 = tpool_create(2);
  printf("%-6s %9s %10s %7s %10s %7s | %12s %12s %6s\n", "type", "L2 GB/s",
         "mv1 GB/s", "of bw1", "mv2 GB/s", "of bw2", "pp GOP/s 1t", "naive 1t",
         "ratio");
  for (int i = 0; i < nt; i++) {
    const char *name = argc > 1 ? argv[i + 1] : def[i];
    int type = qtype_from_name(name);
    if (type < 0 || !k_type_supported(type)) {
      printf("%-6s unsupported\n", name);
      continue;
    }
    double g1 = 0, g2 = 0;
    if (!prefill_only) { /* ~200 MB of weights: far beyond the caches */
      int64_t cols = 4096;
      int64_t rows = (int64_t)(200e6 / (double)qtype_row_size(type, cols));
      rows -= rows % 16;
      void *W = make_matrix(type, rows, cols);
      float *x = malloc(sizeof(float) * cols),
            *y = malloc(sizeof(float) * rows);
      fill_random(x, cols, 3);
      g1 = bench_matvec(p1, type, W, rows, cols, x, y);
      g2 = bench_matvec(p2, type, W, rows, cols, x, y);
      free(W), free(x), free(y);
    }
    double tiled, naive;
    bench_prefill(p1, type, 896, 4864, 128, &tiled, &naive);
    double l2 = bench_matvec_l2(type);
    printf("%-6s %9.1f %10.1f %6.0f%% %10.1f %6.0f%% | %12.1f %12.1f %5.2fx\n",
           name, l2, g1, 100 * g1 / bw1, g2, 100 * g2 / bw2, tiled, naive,
           tiled / naive);
    fflush(stdout);
  }
  tpool_free(p1);
  tpool_free(p2);
  return 0;
}
