/* File bytes on disk: <data>/blobs/<id>, written via blobs/tmp/<id>.part,
 * fsync'd and renamed into place (then the directory fsync'd), so a blob is
 * either absent or complete under its id. SHA-256 and MD5 are computed as
 * bytes stream through (nettle: plain structs, no library state). Knows
 * nothing about objects, SQL or HTTP. */
#include "store/blob.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <nettle/md5.h>
#include <nettle/sha2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/ids.h"
#include "core/paths.h"

#define COPY_BUF (1 << 20) /* concat copies through one 1 MiB buffer */

struct blob_writer {
  char dir[4096]; /* <data>/blobs */
  char tmp[4300]; /* <data>/blobs/tmp/<id>.part */
  char id[BLOB_ID_MAX];
  int fd;
  long long size;
  struct sha256_ctx sha256;
  struct md5_ctx md5;
};

static int blobs_dir(const char *data_dir, char *out, size_t n) {
  int w = snprintf(out, n, "%s/blobs", data_dir);
  return w < 0 || (size_t)w >= n ? -1 : 0;
}

static void hex(const unsigned char *b, unsigned n, char *out) {
  static const char d[] = "0123456789abcdef";
  for (unsigned i = 0; i < n; i++) {
    out[2 * i] = d[b[i] >> 4];
    out[2 * i + 1] = d[b[i] & 15];
  }
  out[2 * n] = '\0';
}

static void writer_free(blob_writer *w) {
  if (w->fd >= 0)
    close(w->fd);
  free(w);
}

int blob_begin(const char *data_dir, blob_writer **out, char *err,
               size_t errlen) {
  *out = NULL;
  blob_writer *w = calloc(1, sizeof *w);
  if (!w) {
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  w->fd = -1;
  char tmpdir[4200];
  if (blobs_dir(data_dir, w->dir, sizeof w->dir) != 0 ||
      snprintf(tmpdir, sizeof tmpdir, "%s/tmp", w->dir) < 0 ||
      paths_mkdir_p(tmpdir) != 0) {
    snprintf(err, errlen, "cannot create %s/blobs/tmp: %s", data_dir,
             strerror(errno));
    writer_free(w);
    return -1;
  }
  id_new("blob_", w->id, sizeof w->id);
  snprintf(w->tmp, sizeof w->tmp, "%s/%s.part", tmpdir, w->id);
  w->fd = open(w->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  sha256_init(&w->sha256);
  md5_init(&w->md5);
  if (w->fd < 0) {
    snprintf(err, errlen, "cannot create %s: %s", w->tmp, strerror(errno));
    if (w->fd >= 0)
      unlink(w->tmp);
    writer_free(w);
    return -1;
  }
  *out = w;
  return 0;
}

int blob_write(blob_writer *w, const void *buf, size_t n) {
  const char *p = buf;
  sha256_update(&w->sha256, n, buf);
  md5_update(&w->md5, n, buf);
  while (n > 0) {
    ssize_t k = write(w->fd, p, n);
    if (k < 0 && errno == EINTR)
      continue;
    if (k <= 0)
      return -1;
    p += k;
    n -= (size_t)k;
    w->size += k;
  }
  return 0;
}

long long blob_written(const blob_writer *w) {
  return w->size;
}

void blob_abort(blob_writer *w) {
  if (!w)
    return;
  unlink(w->tmp);
  writer_free(w);
}

static int fsync_dir(const char *dir) {
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return -1;
  int rc = fsync(fd);
  close(fd);
  return rc;
}

int blob_commit(blob_writer *w, blob_info *out) {
  unsigned char sha[SHA256_DIGEST_SIZE], md5[MD5_DIGEST_SIZE];
  const unsigned sha_n = SHA256_DIGEST_SIZE, md5_n = MD5_DIGEST_SIZE;
  char final[4200 + BLOB_ID_MAX];
  snprintf(final, sizeof final, "%s/%s", w->dir, w->id);
  int ok = fsync(w->fd) == 0 && close(w->fd) == 0;
  w->fd = -1;
  sha256_digest(&w->sha256, sha_n, sha);
  md5_digest(&w->md5, md5_n, md5);
  ok = ok && rename(w->tmp, final) == 0;
  if (!ok) {
    blob_abort(w);
    return -1;
  }
  /* The rename is durable once the directory is. */
  if (fsync_dir(w->dir) != 0) {
    unlink(final);
    blob_abort(w);
    return -1;
  }
  memset(out, 0, sizeof *out);
  snprintf(out->id, sizeof out->id, "%s", w->id);
  out->size = w->size;
  hex(sha, sha_n, out->sha256);
  hex(md5, md5_n, out->md5);
  writer_free(w);
  return 0;
}

/* <data>/blobs/<id> for a well-formed id; -1 (EINVAL) otherwise. */
static int blob_path(const char *data_dir, const char *id, char *out,
                     size_t n) {
  if (!id_valid("blob_", id)) {
    errno = EINVAL;
    return -1;
  }
  int w = snprintf(out, n, "%s/blobs/%s", data_dir, id);
  return w < 0 || (size_t)w >= n ? -1 : 0;
}

int blob_open(const char *data_dir, const char *id, int *fd, long long *size) {
  char path[4200];
  struct stat st;
  if (blob_path(data_dir, id, path, sizeof path) != 0)
    return -1;
  int f = open(path, O_RDONLY | O_CLOEXEC);
  if (f < 0)
    return -1;
  if (fstat(f, &st) != 0) {
    close(f);
    return -1;
  }
  *fd = f;
  *size = (long long)st.st_size;
  return 0;
}

int blob_delete(const char *data_dir, const char *id) {
  char path[4200];
  if (blob_path(data_dir, id, path, sizeof path) != 0)
    return -1;
  return unlink(path) == 0 || errno == ENOENT ? 0 : -1;
}

/* Streams blob id into w through buf. */
static int copy_into(const char *data_dir, const char *id, blob_writer *w,
                     char *buf, char *err, size_t errlen) {
  int fd;
  long long size;
  if (blob_open(data_dir, id, &fd, &size) != 0) {
    snprintf(err, errlen, "blob %s: %s", id, strerror(errno));
    return -1;
  }
  int rc = 0;
  for (;;) {
    ssize_t k = read(fd, buf, COPY_BUF);
    if (k < 0 && errno == EINTR)
      continue;
    if (k == 0)
      break;
    if (k < 0 || blob_write(w, buf, (size_t)k) != 0) {
      snprintf(err, errlen, "copying blob %s: %s", id, strerror(errno));
      rc = -1;
      break;
    }
  }
  close(fd);
  return rc;
}

int blob_concat(const char *data_dir, const char *const *ids, size_t n,
                blob_info *out, char *err, size_t errlen) {
  blob_writer *w;
  if (blob_begin(data_dir, &w, err, errlen) != 0)
    return -1;
  char *buf = malloc(COPY_BUF);
  if (!buf) {
    snprintf(err, errlen, "out of memory");
    blob_abort(w);
    return -1;
  }
  for (size_t i = 0; i < n; i++) {
    if (copy_into(data_dir, ids[i], w, buf, err, errlen) != 0) {
      free(buf);
      blob_abort(w);
      return -1;
    }
  }
  free(buf);
  if (blob_commit(w, out) != 0) {
    snprintf(err, errlen, "cannot commit blob: %s", strerror(errno));
    return -1;
  }
  return 0;
}

int blob_sweep_tmp(const char *data_dir, long long max_age) {
  char dir[4200], path[4600];
  snprintf(dir, sizeof dir, "%s/blobs/tmp", data_dir);
  DIR *d = opendir(dir);
  if (!d)
    return errno == ENOENT ? 0 : -1;
  int removed = 0;
  time_t now = time(NULL);
  struct dirent *e;
  while ((e = readdir(d))) {
    struct stat st;
    if (e->d_name[0] == '.')
      continue;
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    if (stat(path, &st) == 0 && S_ISREG(st.st_mode) &&
        (long long)(now - st.st_mtime) > max_age && unlink(path) == 0)
      removed++;
  }
  closedir(d);
  return removed;
}
