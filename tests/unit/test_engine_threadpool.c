/* Thread pool: every thread runs each task exactly once with the right
 * (ith, nth), tasks see the caller's writes and the caller sees theirs,
 * partial pools (tpool_run_n), scratch memory and the split helper. */
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

#include "engine/threadpool.h"
#include "t.h"

typedef struct {
  const int64_t *v;
  int64_t n;
  int64_t part[64];
  atomic_int calls;
  atomic_int bad;
  int expect_nth;
} sum_job;

static void sum_task(void *arg, int ith, int nth) {
  sum_job *j = arg;
  atomic_fetch_add(&j->calls, 1);
  if (nth != j->expect_nth || ith < 0 || ith >= nth)
    atomic_fetch_add(&j->bad, 1);
  long long a, b;
  tpool_split(j->n, ith, nth, 1, &a, &b);
  int64_t s = 0;
  for (long long i = a; i < b; i++)
    s += j->v[i];
  j->part[ith] = s;
}

static void check_sums(int n_threads, int runs) {
  enum { N = 10007 };
  static int64_t v[N];
  int64_t want = 0;
  for (int i = 0; i < N; i++)
    want += v[i] = (i * 7919) % 1000 - 500;
  tpool *p = tpool_create(n_threads);
  CHECK(p != NULL);
  if (!p)
    return;
  CHECK_INT(tpool_n_threads(p), n_threads);
  for (int r = 0; r < runs; r++) {
    int nth = 1 + r % n_threads; /* also partial pools */
    sum_job j = {.v = v, .n = N - (r % 13), .expect_nth = nth};
    atomic_init(&j.calls, 0);
    atomic_init(&j.bad, 0);
    int64_t w = want;
    for (int64_t i = j.n; i < N; i++)
      w -= v[i];
    tpool_run_n(p, sum_task, &j, nth);
    int64_t got = 0;
    for (int t = 0; t < nth; t++)
      got += j.part[t];
    CHECK_INT(atomic_load(&j.calls), nth);
    CHECK_INT(atomic_load(&j.bad), 0);
    CHECK_INT(got, w);
    if (got != w)
      break;
  }
  tpool_free(p);
}

static void test_sums_1(void) {
  check_sums(1, 200);
}
static void test_sums_2(void) {
  check_sums(2, 3000);
}
static void test_sums_3(void) {
  check_sums(3, 2000);
}
static void test_sums_4(void) {
  check_sums(4, 2000);
}

static void full_task(void *arg, int ith, int nth) {
  sum_job *j = arg;
  (void)ith;
  if (nth != j->expect_nth)
    atomic_fetch_add(&j->bad, 1);
  atomic_fetch_add(&j->calls, 1);
}

/* tpool_run uses every thread; a NULL pool runs inline. */
static void test_run_all_and_null(void) {
  tpool *p = tpool_create(3);
  CHECK(p != NULL);
  sum_job j = {.expect_nth = 3};
  atomic_init(&j.calls, 0);
  atomic_init(&j.bad, 0);
  for (int r = 0; r < 100; r++)
    tpool_run(p, full_task, &j);
  CHECK_INT(atomic_load(&j.calls), 300);
  CHECK_INT(atomic_load(&j.bad), 0);
  tpool_free(p);
  sum_job k = {.expect_nth = 1};
  atomic_init(&k.calls, 0);
  atomic_init(&k.bad, 0);
  tpool_run(NULL, full_task, &k);
  CHECK_INT(atomic_load(&k.calls), 1);
  CHECK_INT(atomic_load(&k.bad), 0);
  CHECK_INT(tpool_n_threads(NULL), 1);
}

/* Workers that went to sleep (futex) wake up for the next task. */
static void test_wake_after_sleep(void) {
  tpool *p = tpool_create(2);
  CHECK(p != NULL);
  sum_job j = {.expect_nth = 2};
  atomic_init(&j.calls, 0);
  atomic_init(&j.bad, 0);
  for (int r = 0; r < 5; r++) {
    struct timespec ts = {0, 20 * 1000 * 1000};
    nanosleep(&ts, NULL); /* long enough for the spin to give up */
    tpool_run(p, full_task, &j);
  }
  CHECK_INT(atomic_load(&j.calls), 10);
  CHECK_INT(atomic_load(&j.bad), 0);
  tpool_free(p);
}

typedef struct {
  atomic_int next;
  int n_items;
  atomic_int hits[512];
  atomic_int calls;
} dyn_job;

static void dyn_task(void *arg, int ith, int nth) {
  dyn_job *j = arg;
  (void)ith, (void)nth;
  atomic_fetch_add(&j->calls, 1);
  for (int it; (it = atomic_fetch_add(&j->next, 1)) < j->n_items;)
    atomic_fetch_add(&j->hits[it], 1);
}

/* Dynamic tasks: every item exactly once, the caller always takes part,
 * interleaved with static tasks on the same pool (stale generations). */
static void test_run_dyn(void) {
  for (int n = 1; n <= 4; n++) {
    tpool *p = tpool_create(n);
    static dyn_job j;
    int bad = 0;
    for (int r = 0; r < 1500 && !bad; r++) {
      memset(&j, 0, sizeof j);
      j.n_items = r % 512;
      tpool_run_dyn(r % 7 == 6 ? NULL : p, dyn_task, &j);
      for (int i = 0; i < 512; i++)
        if (atomic_load(&j.hits[i]) != (i < j.n_items))
          bad = 1;
      int c = atomic_load(&j.calls);
      if (c < 1 || c > n)
        bad = 1;
      if (r % 3 == 0) { /* a static task in between */
        sum_job s = {.expect_nth = n};
        atomic_init(&s.calls, 0);
        atomic_init(&s.bad, 0);
        tpool_run(p, full_task, &s);
        if (atomic_load(&s.calls) != n || atomic_load(&s.bad))
          bad = 1;
      }
    }
    CHECKF(!bad, "n=%d", n);
    tpool_free(p);
  }
}

static void test_scratch(void) {
  tpool *p = tpool_create(1);
  CHECK(tpool_scratch(NULL, 10) == NULL);
  char *a = tpool_scratch(p, 100);
  CHECK(a != NULL && ((uintptr_t)a & 63) == 0);
  memset(a, 1, 100);
  CHECK(tpool_scratch(p, 50) == a); /* no reallocation when it fits */
  char *b = tpool_scratch(p, 1 << 20);
  CHECK(b != NULL && ((uintptr_t)b & 63) == 0);
  memset(b, 2, 1 << 20);
  tpool_free(p);
  tpool_free(NULL);
}

static void test_split(void) {
  for (int n = 0; n < 100; n += 7)
    for (int nth = 1; nth <= 5; nth++)
      for (int align = 1; align <= 16; align *= 4) {
        long long prev = 0;
        for (int t = 0; t < nth; t++) {
          long long a, b;
          tpool_split(n, t, nth, align, &a, &b);
          CHECK(a == prev && b >= a && b <= n);
          if (b < n)
            CHECK(b % align == 0);
          prev = b;
        }
        CHECK_INT(prev, n);
      }
}

int main(void) {
  RUN(test_sums_1);
  RUN(test_sums_2);
  RUN(test_sums_3);
  RUN(test_sums_4);
  RUN(test_run_all_and_null);
  RUN(test_wake_after_sleep);
  RUN(test_run_dyn);
  RUN(test_scratch);
  RUN(test_split);
  T_MAIN_END();
}
