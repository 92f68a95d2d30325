/* Streamed response bodies: a byte queue between one producer and http/,
 * with a lock, a condition for a producer that outruns its client, and a
 * one-shot wake-up for a consumer that found it empty. Invariant: `waiting`
 * is set only by a read that called suspend, and cleared by exactly one
 * wake (or by release, when the consumer is gone). */
#include "api/stream.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct api_stream {
  pthread_mutex_t mu;
  pthread_cond_t drained;
  char *buf; /* bytes [head, len) are unread */
  size_t head, len, cap;
  int refs;
  int ended;     /* the producer is done */
  int cancelled; /* the client is gone or the server stops */
  int waiting;   /* the consumer is suspended until wake */
  api_stream_fn wake;
  void *wake_cls;
};

api_stream *api_stream_new(void) {
  api_stream *s = calloc(1, sizeof *s);
  if (!s)
    return NULL;
  pthread_mutex_init(&s->mu, NULL);
  pthread_cond_init(&s->drained, NULL);
  s->refs = 2;
  return s;
}

/* Drops one reference; the caller holds the lock, which this releases. */
static void unref_unlock(api_stream *s) {
  int last = --s->refs == 0;
  pthread_mutex_unlock(&s->mu);
  if (!last)
    return;
  pthread_mutex_destroy(&s->mu);
  pthread_cond_destroy(&s->drained);
  free(s->buf);
  free(s);
}

/* Delivers the pending wake-up, if any (lock held). */
static void wake_locked(api_stream *s) {
  if (s->waiting && s->wake) {
    s->waiting = 0;
    s->wake(s->wake_cls);
  }
}

static int reserve(api_stream *s, size_t n) {
  if (s->head && s->head == s->len)
    s->head = s->len = 0;
  if (s->len + n <= s->cap)
    return 0;
  if (s->head) { /* compact before growing */
    memmove(s->buf, s->buf + s->head, s->len - s->head);
    s->len -= s->head;
    s->head = 0;
    if (s->len + n <= s->cap)
      return 0;
  }
  size_t cap = s->cap ? s->cap : 4096;
  while (cap < s->len + n)
    cap *= 2;
  char *b = realloc(s->buf, cap);
  if (!b)
    return -1;
  s->buf = b;
  s->cap = cap;
  return 0;
}

int api_stream_write(api_stream *s, const void *data, size_t n) {
  pthread_mutex_lock(&s->mu);
  while (!s->cancelled && s->len - s->head > API_STREAM_MAX_BUFFERED)
    pthread_cond_wait(&s->drained, &s->mu);
  int rc = -1;
  if (!s->cancelled && !s->ended && reserve(s, n) == 0) {
    memcpy(s->buf + s->len, data, n);
    s->len += n;
    rc = 0;
    wake_locked(s);
  }
  pthread_mutex_unlock(&s->mu);
  return rc;
}

int api_stream_sse(api_stream *s, const char *event, const json_t *data) {
  char *j = json_dumps(data, JSON_COMPACT | JSON_ENCODE_ANY);
  if (!j)
    return -1;
  size_t ev = event ? strlen(event) : 0, jn = strlen(j);
  size_t n = (ev ? ev + 8 : 0) + 6 + jn + 2;
  char *msg = malloc(n + 1);
  int rc = -1;
  if (msg) {
    size_t k = 0;
    if (ev) {
      memcpy(msg, "event: ", 7);
      memcpy(msg + 7, event, ev);
      msg[7 + ev] = '\n';
      k = ev + 8;
    }
    memcpy(msg + k, "data: ", 6);
    memcpy(msg + k + 6, j, jn);
    memcpy(msg + k + 6 + jn, "\n\n", 2);
    rc = api_stream_write(s, msg, n);
    free(msg);
  }
  free(j);
  return rc;
}

int api_stream_sse_done(api_stream *s) {
  static const char done[] = "data: [DONE]\n\n";
  return api_stream_write(s, done, sizeof done - 1);
}

int api_stream_cancelled(api_stream *s) {
  pthread_mutex_lock(&s->mu);
  int c = s->cancelled;
  pthread_mutex_unlock(&s->mu);
  return c;
}

size_t api_stream_buffered(api_stream *s) {
  pthread_mutex_lock(&s->mu);
  size_t n = s->len - s->head;
  pthread_mutex_unlock(&s->mu);
  return n;
}

void api_stream_end(api_stream *s) {
  pthread_mutex_lock(&s->mu);
  s->ended = 1;
  wake_locked(s);
  unref_unlock(s);
}

ssize_t api_stream_read(api_stream *s, char *buf, size_t max,
                        api_stream_fn suspend, api_stream_fn wake, void *cls) {
  ssize_t n;
  pthread_mutex_lock(&s->mu);
  size_t avail = s->len - s->head;
  if (avail) {
    n = (ssize_t)(avail < max ? avail : max);
    memcpy(buf, s->buf + s->head, (size_t)n);
    s->head += (size_t)n;
    pthread_cond_broadcast(&s->drained);
  } else if (s->ended) {
    n = -1;
  } else {
    s->waiting = 1;
    s->wake = wake;
    s->wake_cls = cls;
    suspend(cls);
    n = 0;
  }
  pthread_mutex_unlock(&s->mu);
  return n;
}

void api_stream_release(api_stream *s) {
  pthread_mutex_lock(&s->mu);
  s->cancelled = 1;
  s->waiting = 0;
  s->wake = NULL;
  pthread_cond_broadcast(&s->drained);
  unref_unlock(s);
}

void api_stream_abort(api_stream *s) {
  pthread_mutex_lock(&s->mu);
  s->cancelled = 1;
  s->ended = 1;
  pthread_cond_broadcast(&s->drained);
  wake_locked(s);
  pthread_mutex_unlock(&s->mu);
}
