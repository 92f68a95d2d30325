/* Batched access log: a mutex-guarded buffer, written when full or by the
 * flusher thread ALOG_FLUSH_MS after it stopped being empty. Invariant:
 * the buffer is written in arrival order and never holds a partial line. */
#include "http/alog.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define ALOG_BUF (32 * 1024)

struct alog {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  pthread_t flusher;
  int fd;
  int stop;
  size_t len;
  char buf[ALOG_BUF];
};

static void write_all(int fd, const char *p, size_t n) {
  while (n) {
    ssize_t k = write(fd, p, n);
    if (k < 0 && errno == EINTR)
      continue;
    if (k <= 0)
      return; /* a log that cannot be written is dropped */
    p += k;
    n -= (size_t)k;
  }
}

/* Lock held. */
static void flush_locked(alog *l) {
  write_all(l->fd, l->buf, l->len);
  l->len = 0;
}

static void *flusher(void *p) {
  alog *l = p;
  pthread_mutex_lock(&l->mu);
  while (!l->stop) {
    if (!l->len) {
      pthread_cond_wait(&l->cv, &l->mu);
      continue;
    }
    /* Let a batch gather, then write it. */
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_nsec += ALOG_FLUSH_MS * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
      until.tv_sec++;
      until.tv_nsec -= 1000000000L;
    }
    while (!l->stop && pthread_cond_timedwait(&l->cv, &l->mu, &until) == 0)
      ;
    flush_locked(l);
  }
  flush_locked(l);
  pthread_mutex_unlock(&l->mu);
  return NULL;
}

alog *alog_start(int fd) {
  alog *l = calloc(1, sizeof *l);
  if (!l)
    return NULL;
  l->fd = fd;
  pthread_mutex_init(&l->mu, NULL);
  pthread_cond_init(&l->cv, NULL);
  if (pthread_create(&l->flusher, NULL, flusher, l) != 0) {
    pthread_mutex_destroy(&l->mu);
    pthread_cond_destroy(&l->cv);
    free(l);
    return NULL;
  }
  return l;
}

void alog_line(alog *l, const char *line, size_t n) {
  if (!l) {
    write_all(2, line, n);
    return;
  }
  pthread_mutex_lock(&l->mu);
  if (l->len + n > sizeof l->buf)
    flush_locked(l);
  if (n > sizeof l->buf) {
    write_all(l->fd, line, n);
  } else {
    int was_empty = l->len == 0;
    memcpy(l->buf + l->len, line, n);
    l->len += n;
    if (was_empty)
      pthread_cond_signal(&l->cv);
  }
  pthread_mutex_unlock(&l->mu);
}

void alog_stop(alog *l) {
  if (!l)
    return;
  pthread_mutex_lock(&l->mu);
  l->stop = 1;
  pthread_cond_signal(&l->cv);
  pthread_mutex_unlock(&l->mu);
  pthread_join(l->flusher, NULL);
  pthread_mutex_destroy(&l->mu);
  pthread_cond_destroy(&l->cv);
  free(l);
}
