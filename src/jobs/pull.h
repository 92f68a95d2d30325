/* Model download ("hearth pull"): fetches a GGUF file over HTTP(S) with
 * libcurl into <models_dir>/<name>.gguf.part, resuming a previous partial
 * download with a Range request (checked: 206 + a matching Content-Range,
 * otherwise the download restarts from zero), following redirects, hashing
 * with SHA-256 while it streams (an existing part is re-hashed first), and at
 * the end checking the GGUF magic and the expected digest (the caller's, or
 * else the SHA-256 a Hugging Face-style server publishes in X-Linked-Etag on
 * its redirect to an LFS file), fsync-ing and
 * renaming atomically to <name>.gguf. Beside the part, <name>.gguf.part.meta
 * records the URL and ETag it came from: a part from another URL is
 * discarded, and a resume sends If-Range so that a file changed on the
 * server is downloaded afresh. A small built-in catalog maps
 * well-known model names to Hugging Face URLs.
 *
 * Prints nothing: progress goes through a callback, errors into a buffer.
 * Knows nothing about HTTP serving, the store or the engine. */
#ifndef HEARTH_JOBS_PULL_H
#define HEARTH_JOBS_PULL_H

#include <stddef.h>
#include <stdint.h>

/* ---- catalog ----------------------------------------------------------- */

typedef struct pull_catalog_entry {
  const char *name;   /* "qwen2.5-0.5b-instruct:q4_k_m" */
  const char *repo;   /* Hugging Face repository, "Qwen/Qwen2.5-..." */
  const char *file;   /* file in that repository, "...q4_k_m.gguf" */
  const char *sha256; /* lowercase hex, or NULL when not known */
  const char *about;  /* one line for --list */
} pull_catalog_entry;

/* The whole catalog; *n receives its length. */
const pull_catalog_entry *pull_catalog(size_t *n);

/* Case-insensitive lookup by name; also accepts the local-name spelling
 * ("qwen2.5-0.5b-instruct-q4_k_m") . NULL when unknown. */
const pull_catalog_entry *pull_catalog_find(const char *name);

/* What a NAME|URL argument means: the URL to fetch, the default local name
 * (catalog: the name with ':' as '-'; URL: the last path segment without
 * query and ".gguf") and the known digest (NULL if none). 0, or -1 with a
 * message in err (unknown name, not http(s), no usable file name). */
typedef struct pull_target {
  char url[2048];
  char name[129];
  const char *sha256;
} pull_target;
int pull_resolve(const char *name_or_url, pull_target *t, char *err,
                 size_t errlen);

/* 1 if s is usable as a local model name: 1..128 of [A-Za-z0-9._-], not
 * starting with '.' or '-'. */
int pull_name_ok(const char *s);

/* ---- download ---------------------------------------------------------- */

typedef enum pull_status {
  PULL_OK = 0,
  PULL_EINVAL,    /* bad options (name, digest, directory) */
  PULL_EHTTP,     /* the server answered an HTTP error status */
  PULL_ENET,      /* DNS, connect, TLS, timeout, dropped connection */
  PULL_EIO,       /* local file error */
  PULL_ENOSPC,    /* disk full */
  PULL_ECHECKSUM, /* SHA-256 differs from the expected one */
  PULL_ENOTGGUF,  /* downloaded bytes do not start with the GGUF magic */
  PULL_EBUSY,     /* another pull of the same name is running */
} pull_status;

typedef struct pull_progress {
  uint64_t done;         /* bytes in the part file so far */
  uint64_t total;        /* expected final size, 0 while unknown */
  uint64_t resumed_from; /* bytes already present when this attempt began */
  double elapsed;        /* seconds since this attempt began */
} pull_progress;

/* Called often (at least on every received chunk); return non-zero to abort
 * the download (the part file is kept, so a later pull resumes). */
typedef int (*pull_progress_fn)(const pull_progress *p, void *ud);

typedef struct pull_opts {
  const char *url;        /* http:// or https:// */
  const char *models_dir; /* created (mkdir -p) if missing */
  const char *name;       /* local name, see pull_name_ok */
  const char *sha256;     /* expected digest, 64 hex chars, or NULL */
  int retries;            /* extra attempts after a dropped connection that
                             made progress (each resumes); 0 = none */
  long connect_timeout_s; /* 0 = 30 */
  long stall_timeout_s;   /* abort when < 1 byte/s for this long; 0 = 60 */
  const char *bearer;     /* "Authorization: Bearer" token for the URL's own
                             host (gated Hugging Face repos), or NULL */
  pull_progress_fn progress;
  void *progress_ud;
} pull_opts;

typedef struct pull_result {
  char path[4096];       /* final file, <models_dir>/<name>.gguf */
  uint64_t bytes;        /* its size */
  char sha256[65];       /* its digest, lowercase hex */
  uint64_t resumed_from; /* bytes reused from an earlier part (first
                            attempt), 0 if it started from scratch */
  int restarted;         /* 1 if a server ignored Range and we restarted */
  int attempts;          /* HTTP transfers made */
  int already;           /* 1 if <name>.gguf existed and was kept as is */
  long http_status;      /* last HTTP status seen (0 if none) */
  int sha256_checked;    /* 1 if sha256 was compared with a known digest
                            (opts.sha256, or the server's X-Linked-Etag) */
} pull_result;

/* Downloads o->url to <models_dir>/<name>.gguf. If that file already exists
 * it is verified (magic, digest when given) and kept (r->already = 1).
 * On error the part file is kept when resuming could help (network errors,
 * aborted by the callback) and deleted when its content is wrong (digest
 * mismatch, not GGUF). The part is locked (flock) while in use: a second
 * pull of the same name at the same time fails with PULL_EBUSY. Returns
 * PULL_OK or an error with a message in err. */
pull_status pull_download(const pull_opts *o, pull_result *r, char *err,
                          size_t errlen);

#endif
