/* Persistent thread pool (see threadpool.h). One generation counter is the
 * futex word (low 8 bits: how many threads the task uses, bit 8: dynamic
 * task, so a worker reads them atomically with the generation): tpool_run
 * publishes the task, bumps the generation and wakes
 * sleepers; workers spin on it briefly (decode calls the pool many times per
 * token, microseconds apart) before sleeping in futex_wait. Completion is a
 * countdown the caller spins on (then yields). Knows nothing about what the
 * tasks compute. */
#include "engine/threadpool.h"

#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define CPU_RELAX() _mm_pause()
#else
#define CPU_RELAX() ((void)0)
#endif

/* Spin iterations (pause instructions, ~tens of cycles each) before a worker
 * goes to sleep, and before the waiting caller starts yielding. */
enum { SPIN_WORKER = 4000, SPIN_CALLER = 2000 };
enum { TPOOL_MAX_THREADS = 255 }; /* nth lives in 8 bits of the futex word */
enum { GEN_SHIFT = 9, GEN_DYN = 1u << 8, DYN_CLOSED = 1u << 15 };

struct tpool;

typedef struct {
  struct tpool *pool;
  int ith;
} tworker;

struct tpool {
  int n;              /* threads including the caller */
  pthread_t *threads; /* n - 1 workers */
  tworker *workers;   /* n - 1 */
  atomic_uint gen;    /* futex word: generation << 9 | dyn << 8 | nth */
  atomic_int n_sleep; /* workers inside futex_wait (or about to be) */
  atomic_int pending; /* static task: workers still running it */
  atomic_uint dyn;    /* dynamic task: gen tag << 16 | CLOSED | joined */
  atomic_int done;    /* dynamic task: joined workers that finished */
  atomic_int stop;
  tpool_fn fn; /* current task, published before gen is bumped and */
  void *arg;   /* unchanged until every thread running it is done */
  void *scratch;
  size_t scratch_size;
};

static void futex_wait(atomic_uint *addr, unsigned val) {
  syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAIT_PRIVATE, val, NULL, NULL, 0);
}

static void futex_wake_all(atomic_uint *addr) {
  syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAKE_PRIVATE, INT32_MAX, NULL,
          NULL, 0);
}

/* Waits until the generation differs from `seen`; returns the new one. */
static unsigned wait_new_gen(tpool *p, unsigned seen) {
  for (int i = 0; i < SPIN_WORKER; i++) {
    unsigned g = atomic_load_explicit(&p->gen, memory_order_acquire);
    if (g != seen)
      return g;
    CPU_RELAX();
  }
  for (;;) {
    atomic_fetch_add(&p->n_sleep, 1);
    unsigned g = atomic_load(&p->gen);
    if (g == seen)
      futex_wait(&p->gen, seen);
    atomic_fetch_sub(&p->n_sleep, 1);
    g = atomic_load_explicit(&p->gen, memory_order_acquire);
    if (g != seen)
      return g;
  }
}

/* Joins dynamic task `word` unless the caller has closed it already. */
static int dyn_join(tpool *p, unsigned word) {
  unsigned tag = ((word >> GEN_SHIFT) & 0xffff) << 16;
  unsigned v = atomic_load(&p->dyn);
  for (;;) {
    if ((v & 0xffff0000u) != tag || (v & DYN_CLOSED))
      return 0;
    if (atomic_compare_exchange_weak(&p->dyn, &v, v + 1))
      return 1;
  }
}

static void *worker_main(void *v) {
  tworker *w = v;
  tpool *p = w->pool;
  unsigned seen = 0; /* the initial word: a task may already be published */
  for (;;) {
    seen = wait_new_gen(p, seen);
    if (atomic_load_explicit(&p->stop, memory_order_acquire))
      break;
    int nth = (int)(seen & 0xff);
    if (w->ith >= nth)
      continue;
    if (seen & GEN_DYN) {
      if (!dyn_join(p, seen))
        continue;
      p->fn(p->arg, w->ith, nth);
      atomic_fetch_add_explicit(&p->done, 1, memory_order_acq_rel);
    } else {
      p->fn(p->arg, w->ith, nth);
      atomic_fetch_sub_explicit(&p->pending, 1, memory_order_acq_rel);
    }
  }
  return NULL;
}

static int n_online_cpus(void) {
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n < 1 ? 1 : (int)n;
}

tpool *tpool_create(int n_threads) {
  if (n_threads < 1)
    n_threads = n_online_cpus();
  if (n_threads > TPOOL_MAX_THREADS)
    n_threads = TPOOL_MAX_THREADS;
  tpool *p = calloc(1, sizeof *p);
  if (!p)
    return NULL;
  p->n = n_threads;
  atomic_init(&p->gen, 0);
  atomic_init(&p->n_sleep, 0);
  atomic_init(&p->pending, 0);
  atomic_init(&p->dyn, DYN_CLOSED);
  atomic_init(&p->done, 0);
  atomic_init(&p->stop, 0);
  if (n_threads == 1)
    return p;
  p->threads = calloc((size_t)n_threads - 1, sizeof *p->threads);
  p->workers = calloc((size_t)n_threads - 1, sizeof *p->workers);
  if (!p->threads || !p->workers) {
    free(p->threads);
    free(p->workers);
    free(p);
    return NULL;
  }
  for (int i = 0; i < n_threads - 1; i++) {
    p->workers[i] = (tworker){p, i + 1};
    if (pthread_create(&p->threads[i], NULL, worker_main, &p->workers[i])) {
      p->n = i + 1; /* join what was started */
      tpool_free(p);
      return NULL;
    }
  }
  return p;
}

int tpool_n_threads(const tpool *p) {
  return p ? p->n : 1;
}

/* Publishes a task to the first nth threads: returns the new word. */
static unsigned publish(tpool *p, tpool_fn fn, void *arg, int nth, int dyn) {
  p->fn = fn;
  p->arg = arg;
  unsigned g = atomic_load_explicit(&p->gen, memory_order_relaxed);
  unsigned word = (((g >> GEN_SHIFT) + 1) << GEN_SHIFT) | (dyn ? GEN_DYN : 0) |
                  (unsigned)nth;
  if (dyn) {
    atomic_store(&p->done, 0);
    atomic_store(&p->dyn, ((word >> GEN_SHIFT) & 0xffff) << 16);
  } else {
    atomic_store_explicit(&p->pending, nth - 1, memory_order_relaxed);
  }
  /* seq_cst: publishes fn/arg/pending/dyn before the new word is seen */
  atomic_store(&p->gen, word);
  if (atomic_load(&p->n_sleep) > 0)
    futex_wake_all(&p->gen);
  return word;
}

static void wait_zero(atomic_int *c, int target) {
  for (int i = 0; atomic_load_explicit(c, memory_order_acquire) != target;
       i++) {
    if (i < SPIN_CALLER)
      CPU_RELAX();
    else
      sched_yield();
  }
}

void tpool_run_n(tpool *p, tpool_fn fn, void *arg, int nth) {
  if (!p || p->n == 1 || nth <= 1) {
    fn(arg, 0, 1);
    return;
  }
  if (nth > p->n)
    nth = p->n;
  publish(p, fn, arg, nth, 0);
  fn(arg, 0, nth);
  wait_zero(&p->pending, 0);
}

void tpool_run_dyn(tpool *p, tpool_fn fn, void *arg) {
  if (!p || p->n == 1) {
    fn(arg, 0, 1);
    return;
  }
  publish(p, fn, arg, p->n, 1);
  fn(arg, 0, p->n);
  unsigned v = atomic_fetch_or(&p->dyn, DYN_CLOSED);
  wait_zero(&p->done, (int)(v & 0x7fff));
}

void tpool_run(tpool *p, tpool_fn fn, void *arg) {
  tpool_run_n(p, fn, arg, p ? p->n : 1);
}

void *tpool_scratch(tpool *p, size_t bytes) {
  if (!p)
    return NULL;
  if (bytes <= p->scratch_size && p->scratch)
    return p->scratch;
  size_t sz = (bytes + 63) & ~(size_t)63;
  if (sz < 4096)
    sz = 4096;
  void *m = aligned_alloc(64, sz);
  if (!m)
    return NULL;
  free(p->scratch);
  p->scratch = m;
  p->scratch_size = sz;
  return m;
}

void tpool_free(tpool *p) {
  if (!p)
    return;
  if (p->n > 1) {
    atomic_store(&p->stop, 1);
    atomic_fetch_add(&p->gen, 1u << GEN_SHIFT);
    futex_wake_all(&p->gen);
    for (int i = 0; i < p->n - 1; i++)
      pthread_join(p->threads[i], NULL);
  }
  free(p->threads);
  free(p->workers);
  free(p->scratch);
  free(p);
}

void tpool_split(long long n, int ith, int nth, long long align,
                 long long *start, long long *end) {
  if (align < 1)
    align = 1;
  if (nth < 1)
    nth = 1;
  long long nb = (n + align - 1) / align;
  long long b0 = nb * ith / nth, b1 = nb * (ith + 1) / nth;
  long long s = b0 * align, e = b1 * align;
  *start = s < n ? s : n;
  *end = e < n ? e : n;
}
