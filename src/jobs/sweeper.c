/* The expiry sweeper: deletes expired files, expires stale uploads (and
 * drops their parts), removes temp blobs left by crashes. Runs as one
 * background thread with a clean stop. Knows nothing about HTTP. */
#include "jobs/sweeper.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store/blob.h"

#define SWEEP_BATCH 100
#define TMP_MAX_AGE (24 * 3600) /* a temp blob older than this is orphaned */

typedef struct sweep_ctx {
  store *s;
  int done; /* objects handled this pass */
} sweep_ctx;

static void drop_blob(store *s, const store_obj *o) {
  const char *blob = json_string_value(json_object_get(o->internal, "blob"));
  if (blob && blob_delete(store_data_dir(s), blob) != 0)
    fprintf(stderr, "sweeper: cannot delete blob %s\n", blob);
}

static int expire_file(const char *project, store_obj *o, void *arg) {
  sweep_ctx *c = arg;
  drop_blob(c->s, o);
  if (store_delete(c->s, project, "file", o->id) == STORE_OK)
    c->done++;
  return 0;
}

static int drop_part(const char *project, store_obj *o, void *arg) {
  sweep_ctx *c = arg;
  drop_blob(c->s, o);
  store_delete(c->s, project, "upload_part", o->id);
  return 0;
}

/* store_update callback: pending -> expired; never revisit. */
static int mark_expired(store_obj *o, void *arg) {
  (void)arg;
  const char *st = json_string_value(json_object_get(o->data, "status"));
  if (st && !strcmp(st, "pending"))
    json_object_set_new(o->data, "status", json_string("expired"));
  o->expires_at = 0;
  return 0;
}

static int expire_upload(const char *project, store_obj *o, void *arg) {
  sweep_ctx *c = arg;
  store_each(c->s, project, "upload_part", o->id, drop_part, c);
  if (store_update(c->s, project, "upload", o->id, mark_expired, NULL) ==
      STORE_OK)
    c->done++;
  return 0;
}

/* Runs fn over every expired object of a kind, batch by batch. Each visit
 * clears the object's expiry (deleted or reset), so batches advance. */
static int sweep_kind(sweep_ctx *c, const char *kind, long long now,
                      store_each_fn fn) {
  for (;;) {
    int before = c->done;
    int n = store_each_expired(c->s, kind, now, SWEEP_BATCH, fn, c);
    if (n < 0)
      return -1;
    /* Stop on a short batch, or if nothing could be handled (a store
     * failure would otherwise loop forever on the same rows). */
    if (n < SWEEP_BATCH || c->done == before)
      return 0;
  }
}

int sweeper_run_once(store *s, long long now) {
  sweep_ctx c = {s, 0};
  if (sweep_kind(&c, "file", now, expire_file) != 0 ||
      sweep_kind(&c, "upload", now, expire_upload) != 0)
    return -1;
  blob_sweep_tmp(store_data_dir(s), TMP_MAX_AGE);
  return c.done;
}

/* ===================================================================
 * The thread
 * =================================================================== */

struct sweeper {
  store *s;
  int interval;
  int stop; /* guarded by mu */
  pthread_mutex_t mu;
  pthread_cond_t cv;
  pthread_t thread;
};

/* Sweeps at once (so a stop right after start still saw one pass), then
 * every interval until stopped. */
static void *sweeper_main(void *arg) {
  sweeper *sw = arg;
  pthread_mutex_lock(&sw->mu);
  do {
    pthread_mutex_unlock(&sw->mu);
    sweeper_run_once(sw->s, (long long)time(NULL));
    pthread_mutex_lock(&sw->mu);
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += sw->interval;
    while (!sw->stop &&
           pthread_cond_timedwait(&sw->cv, &sw->mu, &until) != ETIMEDOUT)
      ;
  } while (!sw->stop);
  pthread_mutex_unlock(&sw->mu);
  return NULL;
}

sweeper *sweeper_start(store *s, int interval) {
  sweeper *sw = calloc(1, sizeof *sw);
  if (!sw)
    return NULL;
  sw->s = s;
  sw->interval = interval < 1 ? 1 : interval;
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_mutex_init(&sw->mu, NULL);
  pthread_cond_init(&sw->cv, &ca);
  pthread_condattr_destroy(&ca);
  if (pthread_create(&sw->thread, NULL, sweeper_main, sw) != 0) {
    pthread_mutex_destroy(&sw->mu);
    pthread_cond_destroy(&sw->cv);
    free(sw);
    return NULL;
  }
  return sw;
}

void sweeper_stop(sweeper *sw) {
  if (!sw)
    return;
  pthread_mutex_lock(&sw->mu);
  sw->stop = 1;
  pthread_cond_signal(&sw->cv);
  pthread_mutex_unlock(&sw->mu);
  pthread_join(sw->thread, NULL);
  pthread_mutex_destroy(&sw->mu);
  pthread_cond_destroy(&sw->cv);
  free(sw);
}
