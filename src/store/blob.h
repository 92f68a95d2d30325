/* File bytes on disk, in <data_dir>/blobs/. A blob is written through a
 * streaming writer into blobs/tmp/, fsync'd, then renamed into place (and
 * the directory fsync'd), so a crash never leaves a partial blob visible
 * under its id. SHA-256 and MD5 are computed while writing. Reading hands
 * out a file descriptor so HTTP can stream it (sendfile) without copying.
 * Knows nothing about which object owns a blob (store/store.h keeps that,
 * in an object's `internal`), nor about HTTP. */
#ifndef HEARTH_STORE_BLOB_H
#define HEARTH_STORE_BLOB_H

#include <stddef.h>

#define BLOB_ID_MAX 64

typedef struct blob_info {
  char id[BLOB_ID_MAX]; /* "blob_" + base62; names the file blobs/<id> */
  long long size;       /* bytes */
  char sha256[65];      /* lowercase hex */
  char md5[33];         /* lowercase hex */
} blob_info;

typedef struct blob_writer blob_writer;

/* Starts a new blob under data_dir (creating blobs/ and blobs/tmp/).
 * 0 and *out, or -1 with a message in err. */
int blob_begin(const char *data_dir, blob_writer **out, char *err,
               size_t errlen);
/* Appends n bytes. 0, or -1 (disk full, I/O error): the writer is still
 * valid and must be aborted. */
int blob_write(blob_writer *w, const void *buf, size_t n);
/* Bytes written so far. */
long long blob_written(const blob_writer *w);
/* fsync, rename into place, fsync the directory; fills *out. Frees w in
 * every case; on failure (-1) nothing is left behind. */
int blob_commit(blob_writer *w, blob_info *out);
/* Deletes the temp file and frees w. NULL is fine. */
void blob_abort(blob_writer *w);

/* Opens blob id for reading: 0 with *fd (O_RDONLY|O_CLOEXEC, caller closes)
 * and *size; -1 if absent (errno ENOENT) or id is malformed (EINVAL). */
int blob_open(const char *data_dir, const char *id, int *fd, long long *size);
/* Removes blob id. 0 if removed or already absent, -1 on other errors. */
int blob_delete(const char *data_dir, const char *id);
/* Writes the concatenation of ids[0..n) into a new blob (streamed through a
 * fixed buffer, never whole in memory) and fills *out like blob_commit.
 * -1 with err if a source is missing or I/O fails (nothing left behind). */
int blob_concat(const char *data_dir, const char *const *ids, size_t n,
                blob_info *out, char *err, size_t errlen);
/* Removes temp files in blobs/tmp/ older than max_age seconds (left by a
 * crash mid-write). Returns how many were removed, or -1. */
int blob_sweep_tmp(const char *data_dir, long long max_age);

#endif
