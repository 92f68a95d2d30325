/* Model download with libcurl: catalog, resume, digest, atomic rename (see
 * jobs/pull.h). Prints nothing; knows nothing about serving or the engine. */
#include "jobs/pull.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <nettle/sha2.h>

#include "core/paths.h"

/* ==== catalog ============================================================ */

/* Repository and file names as published on Hugging Face. A digest is given
 * only where several independent published sources agree on it (this
 * machine cannot reach Hugging Face); for the others the SHA-256 Hugging
 * Face sends in X-Linked-Etag is checked, and the GGUF magic always. If a
 * repository replaces a file, its digest here must change: a mismatch is
 * refused, never saved. */
static const pull_catalog_entry catalog[] = {
    {"qwen2.5-0.5b-instruct:q4_k_m", "Qwen/Qwen2.5-0.5B-Instruct-GGUF",
     "qwen2.5-0.5b-instruct-q4_k_m.gguf",
     "74a4da8c9fdbcd15bd1f6d01d621410d31c6fc00986f5eb687824e7b93d7a9db",
     "Qwen2.5 0.5B Instruct, Q4_K_M (~0.49 GB)"},
    {"qwen2.5-0.5b-instruct:q8_0", "Qwen/Qwen2.5-0.5B-Instruct-GGUF",
     "qwen2.5-0.5b-instruct-q8_0.gguf", NULL,
     "Qwen2.5 0.5B Instruct, Q8_0 (~0.7 GB)"},
    {"qwen2.5-1.5b-instruct:q4_k_m", "Qwen/Qwen2.5-1.5B-Instruct-GGUF",
     "qwen2.5-1.5b-instruct-q4_k_m.gguf",
     "6a1a2eb6d15622bf3c96857206351ba97e1af16c30d7a74ee38970e434e9407e",
     "Qwen2.5 1.5B Instruct, Q4_K_M (~1.1 GB)"},
    {"qwen2.5-1.5b-instruct:q8_0", "Qwen/Qwen2.5-1.5B-Instruct-GGUF",
     "qwen2.5-1.5b-instruct-q8_0.gguf", NULL,
     "Qwen2.5 1.5B Instruct, Q8_0 (~1.9 GB)"},
    {"llama-3.2-1b-instruct:q4_k_m", "bartowski/Llama-3.2-1B-Instruct-GGUF",
     "Llama-3.2-1B-Instruct-Q4_K_M.gguf",
     "6f85a640a97cf2bf5b8e764087b1e83da0fdb51d7c9fab7d0fece9385611df83",
     "Llama 3.2 1B Instruct, Q4_K_M (~0.8 GB)"},
    {"llama-3.2-1b-instruct:q8_0", "bartowski/Llama-3.2-1B-Instruct-GGUF",
     "Llama-3.2-1B-Instruct-Q8_0.gguf",
     "432f310a77f4650a88d0fd59ecdd7cebed8d684bafea53cbff0473542964f0c3",
     "Llama 3.2 1B Instruct, Q8_0 (~1.3 GB)"},
    {"smollm2-360m-instruct:q4_k_m", "bartowski/SmolLM2-360M-Instruct-GGUF",
     "SmolLM2-360M-Instruct-Q4_K_M.gguf",
     "2fa3f013dcdd7b99f9b237717fa0b12d75bbb89984cc1274be1471a465bac9c2",
     "SmolLM2 360M Instruct, Q4_K_M (~0.27 GB)"},
    {"smollm2-360m-instruct:q8_0", "bartowski/SmolLM2-360M-Instruct-GGUF",
     "SmolLM2-360M-Instruct-Q8_0.gguf", NULL,
     "SmolLM2 360M Instruct, Q8_0 (~0.39 GB)"},
    {"smollm2-135m-instruct:q4_k_m", "bartowski/SmolLM2-135M-Instruct-GGUF",
     "SmolLM2-135M-Instruct-Q4_K_M.gguf",
     "2e8040ceae7815abe0dcb3540b9995eaa1fa0d2ca9e797d0a635ae4433c68c2d",
     "SmolLM2 135M Instruct, Q4_K_M (~0.1 GB)"},
    {"smollm2-135m-instruct:q8_0", "bartowski/SmolLM2-135M-Instruct-GGUF",
     "SmolLM2-135M-Instruct-Q8_0.gguf", NULL,
     "SmolLM2 135M Instruct, Q8_0 (~0.15 GB)"},
};

const pull_catalog_entry *pull_catalog(size_t *n) {
  *n = sizeof catalog / sizeof *catalog;
  return catalog;
}

/* Compares a and b ignoring case, and treating ':' in a as equal to '-'. */
static int name_eq(const char *cat, const char *s) {
  for (; *cat && *s; cat++, s++) {
    char c = *cat == ':' ? '-' : *cat, d = *s == ':' ? '-' : *s;
    if (tolower((unsigned char)c) != tolower((unsigned char)d))
      return 0;
  }
  return *cat == *s;
}

const pull_catalog_entry *pull_catalog_find(const char *name) {
  for (size_t i = 0; i < sizeof catalog / sizeof *catalog; i++)
    if (name_eq(catalog[i].name, name))
      return &catalog[i];
  return NULL;
}

int pull_name_ok(const char *s) {
  size_t n = strlen(s);
  if (n == 0 || n > 128 || s[0] == '.' || s[0] == '-')
    return 0;
  for (size_t i = 0; i < n; i++)
    if (!isalnum((unsigned char)s[i]) && !strchr("._-", s[i]))
      return 0;
  return 1;
}

static void seterr(char *err, size_t errlen, const char *fmt, ...) {
  va_list ap;
  if (!err || !errlen)
    return;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
}

/* Local name from a URL: last path segment, minus query/fragment and a
 * trailing ".gguf"; characters outside the allowed set become '_'. */
static int name_from_url(const char *url, char *out, size_t outlen) {
  const char *p = strstr(url, "://");
  p = p ? p + 3 : url;
  size_t end = strcspn(p, "?#");
  const char *seg = p;
  for (size_t i = 0; i < end; i++)
    if (p[i] == '/')
      seg = p + i + 1;
  size_t len = (size_t)(p + end - seg);
  if (len >= 5 && !strncasecmp(seg + len - 5, ".gguf", 5))
    len -= 5;
  if (len == 0 || len >= outlen || seg == p)
    return -1;
  for (size_t i = 0; i < len; i++) {
    char c = seg[i];
    out[i] = (isalnum((unsigned char)c) || strchr("._-", c)) ? c : '_';
  }
  out[len] = 0;
  return pull_name_ok(out) ? 0 : -1;
}

int pull_resolve(const char *arg, pull_target *t, char *err, size_t errlen) {
  memset(t, 0, sizeof *t);
  if (!strncasecmp(arg, "http://", 7) || !strncasecmp(arg, "https://", 8)) {
    if (strlen(arg) >= sizeof t->url) {
      seterr(err, errlen, "URL too long");
      return -1;
    }
    strcpy(t->url, arg);
    if (name_from_url(arg, t->name, sizeof t->name)) {
      seterr(err, errlen,
             "cannot derive a model name from URL '%s'; pass --name", arg);
      return -1;
    }
    return 0;
  }
  if (strstr(arg, "://")) {
    seterr(err, errlen, "only http:// and https:// URLs are supported: '%s'",
           arg);
    return -1;
  }
  const pull_catalog_entry *e = pull_catalog_find(arg);
  if (!e) {
    seterr(err, errlen,
           "unknown model '%s' (see 'hearth pull --list', or pass a URL)", arg);
    return -1;
  }
  snprintf(t->url, sizeof t->url, "https://huggingface.co/%s/resolve/main/%s",
           e->repo, e->file);
  snprintf(t->name, sizeof t->name, "%s", e->name);
  for (char *c = t->name; *c; c++)
    if (*c == ':')
      *c = '-';
  t->sha256 = e->sha256;
  return 0;
}

/* ==== download =========================================================== */

/* State of one pull across its attempts. Invariant: `have` equals the size
 * of the part file and `sha` has hashed exactly those bytes. */
typedef struct dl {
  const pull_opts *o;
  pull_result *r;
  CURL *curl;
  int fd;
  uint64_t have;
  struct sha256_ctx sha; /* nettle: a plain struct, copyable */
  /* per attempt */
  uint64_t start;      /* bytes present when the attempt began (Range) */
  uint64_t total;      /* expected final size, 0 unknown */
  long status;         /* status of the latest response */
  int have_crange;     /* Content-Range seen on the latest response */
  uint64_t cr_first;   /* its first byte */
  uint64_t cr_total;   /* its complete length, 0 if '*' */
  int checked;         /* the response was checked before the first write */
  int bad_range;       /* 206 whose range does not start where we asked */
  int disk_errno;      /* errno of a failed write */
  int aborted;         /* the progress callback asked to stop */
  char etag[256];      /* ETag of the latest response, "" if none */
  char if_range[256];  /* strong ETag recorded with the part, "" if none */
  char meta[4300];     /* <part>.meta: the URL and ETag the part came from */
  char linked_sha[65]; /* X-Linked-Etag when it is a SHA-256, "" if none */
  struct timespec t0;
} dl;

static double since(const struct timespec *t0) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)(t.tv_sec - t0->tv_sec) + (t.tv_nsec - t0->tv_nsec) / 1e9;
}

static void sha_reset(dl *d) {
  sha256_init(&d->sha);
}

/* Hex digest of what ctx has hashed so far; ctx itself is left as is. */
static void sha_hex(const struct sha256_ctx *ctx, char out[65]) {
  struct sha256_ctx copy = *ctx;
  uint8_t md[SHA256_DIGEST_SIZE];
  sha256_digest(&copy, sizeof md, md);
  for (int i = 0; i < SHA256_DIGEST_SIZE; i++)
    snprintf(out + 2 * i, 3, "%02x", md[i]);
}

/* Hashes the first `len` bytes of fd (re-reading an existing part). */
static int hash_file(dl *d, uint64_t len) {
  unsigned char buf[1 << 16];
  uint64_t off = 0;
  while (off < len) {
    size_t want = len - off < sizeof buf ? (size_t)(len - off) : sizeof buf;
    ssize_t got = pread(d->fd, buf, want, (off_t)off);
    if (got <= 0)
      return -1;
    sha256_update(&d->sha, (size_t)got, buf);
    off += (uint64_t)got;
  }
  return 0;
}

static int truncate_part(dl *d) {
  if (ftruncate(d->fd, 0) || lseek(d->fd, 0, SEEK_SET) < 0)
    return -1;
  sha_reset(d);
  d->have = 0;
  d->r->resumed_from = 0;
  return 0;
}

/* Parses a Content-Range value: "bytes A-B/N", "bytes A-B/(star)" or
 * "bytes (star)/N" (the answer to an unsatisfiable range). */
static void parse_content_range(dl *d, const char *v) {
  unsigned long long a = 0, b = 0, n = 0;
  while (*v == ' ')
    v++;
  if (strncasecmp(v, "bytes", 5))
    return;
  v += 5;
  while (*v == ' ')
    v++;
  if (sscanf(v, "%llu-%llu/%llu", &a, &b, &n) == 3) {
    d->have_crange = 1;
    d->cr_first = a;
    d->cr_total = n;
  } else if (sscanf(v, "*/%llu", &n) == 1) {
    d->have_crange = 1;
    d->cr_first = 0;
    d->cr_total = n;
  } else if (sscanf(v, "%llu-%llu/*", &a, &b) == 2) {
    d->have_crange = 1;
    d->cr_first = a;
    d->cr_total = 0;
  }
}

/* Hugging Face answers a /resolve/ URL of an LFS file with a redirect whose
 * X-Linked-Etag is the file's SHA-256 (quoted, maybe W/-prefixed); a
 * 64-hex-digit value is kept as the digest to expect when none was given. */
static void linked_etag(dl *d, const char *v, size_t k) {
  char hex[65];
  size_t n = 0;
  for (; k && (*v == ' ' || *v == '\t' || *v == '"' || *v == 'W' || *v == '/');
       v++, k--)
    ;
  for (; k && n < 64 && isxdigit((unsigned char)*v); v++, k--)
    hex[n++] = (char)tolower((unsigned char)*v);
  hex[n] = 0;
  int end = !k || *v == '"' || *v == '\r' || *v == '\n' || *v == ' ';
  if (n == 64 && end)
    memcpy(d->linked_sha, hex, sizeof hex);
}

/* Header lines of every response (redirects included): a status line starts
 * a new response, so it resets what we know about the current one. */
static size_t on_header(char *buf, size_t size, size_t n, void *ud) {
  dl *d = ud;
  size_t len = size * n;
  if (len >= 5 && !strncmp(buf, "HTTP/", 5)) {
    const char *sp = memchr(buf, ' ', len);
    d->status = sp ? strtol(sp + 1, NULL, 10) : 0;
    d->have_crange = 0;
    d->cr_first = d->cr_total = 0;
    d->etag[0] = 0;
  } else if (len > 5 && !strncasecmp(buf, "etag:", 5)) {
    size_t k = len - 5;
    const char *v = buf + 5;
    while (k && (*v == ' ' || *v == '\t'))
      v++, k--;
    while (k && (v[k - 1] == '\r' || v[k - 1] == '\n' || v[k - 1] == ' '))
      k--;
    if (k < sizeof d->etag) {
      memcpy(d->etag, v, k);
      d->etag[k] = 0;
    }
  } else if (len > 14 && !strncasecmp(buf, "x-linked-etag:", 14)) {
    linked_etag(d, buf + 14, len - 14);
  } else if (len > 14 && !strncasecmp(buf, "content-range:", 14)) {
    char v[128];
    size_t k = len - 14 < sizeof v - 1 ? len - 14 : sizeof v - 1;
    memcpy(v, buf + 14, k);
    v[k] = 0;
    parse_content_range(d, v);
  }
  return len;
}

/* Records where the part's bytes come from: "url U\netag E\n". Best effort:
 * without it a later resume simply does not send If-Range. */
static void write_meta(dl *d) {
  FILE *f = fopen(d->meta, "w");
  if (!f)
    return;
  fprintf(f, "url %s\netag %s\n", d->o->url, d->etag);
  fclose(f);
}

/* Reads <part>.meta: -1 if it names another URL (the part is someone
 * else's bytes), else 0 with d->if_range set from a strong ETag. */
static int read_meta(dl *d) {
  char line[2400];
  FILE *f = fopen(d->meta, "r");
  int rc = 0;
  if (!f)
    return 0;
  while (fgets(line, sizeof line, f)) {
    line[strcspn(line, "\n")] = 0;
    if (!strncmp(line, "url ", 4) && strcmp(line + 4, d->o->url))
      rc = -1;
    else if (!strncmp(line, "etag ", 5) && line[5] == '"' &&
             strlen(line + 5) < sizeof d->if_range)
      strcpy(d->if_range, line + 5); /* weak (W/) tags never match */
  }
  fclose(f);
  return rc;
}

static void drop_part(dl *d, const char *part) {
  unlink(part);
  unlink(d->meta);
}

/* Before the first body byte of an attempt: decide whether the answer
 * continues our part (206 from the right offset), replaces it (200: the
 * server ignored Range, restart) or is wrong. 0 to proceed, -1 to stop. */
static int check_response(dl *d) {
  curl_off_t cl = -1;
  d->checked = 1;
  curl_easy_getinfo(d->curl, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl);
  if (d->status == 206) {
    if (!d->have_crange || d->cr_first != d->start) {
      d->bad_range = 1;
      return -1;
    }
    d->total = d->cr_total;
    write_meta(d);
    return 0;
  }
  if (d->status != 200)
    return -1; /* error statuses: the body is not the model */
  if (d->start > 0) {
    if (truncate_part(d))
      return -1;
    d->r->restarted = 1;
    d->start = 0;
  }
  d->total = cl >= 0 ? (uint64_t)cl : 0;
  write_meta(d);
  return 0;
}

static size_t on_body(char *buf, size_t size, size_t n, void *ud) {
  dl *d = ud;
  size_t len = size * n, off = 0;
  if (!d->checked && check_response(d))
    return 0; /* CURLE_WRITE_ERROR; the reason is in d */
  while (off < len) {
    ssize_t w = write(d->fd, buf + off, len - off);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0) {
      d->disk_errno = w < 0 ? errno : EIO;
      return 0;
    }
    off += (size_t)w;
  }
  sha256_update(&d->sha, len, (const uint8_t *)buf);
  d->have += len;
  return len;
}

static int on_xfer(void *ud, curl_off_t dltot, curl_off_t dlnow,
                   curl_off_t ultot, curl_off_t ulnow) {
  dl *d = ud;
  (void)dltot, (void)dlnow, (void)ultot, (void)ulnow;
  if (!d->o->progress)
    return 0;
  pull_progress p = {d->have, d->checked ? d->total : 0, d->start,
                     since(&d->t0)};
  if (d->o->progress(&p, d->o->progress_ud)) {
    d->aborted = 1;
    return 1;
  }
  return 0;
}

/* A message for a failed transfer; the status to return. */
static pull_status transfer_error(dl *d, CURLcode rc, const char *ebuf,
                                  char *err, size_t errlen) {
  const char *url = d->o->url;
  if (d->disk_errno == ENOSPC || d->disk_errno == EDQUOT) {
    seterr(err, errlen,
           "disk full while writing %s.gguf.part (%llu bytes "
           "written; free space and run again to resume)",
           d->o->name, (unsigned long long)d->have);
    return PULL_ENOSPC;
  }
  if (d->disk_errno) {
    seterr(err, errlen, "cannot write %s.gguf.part: %s", d->o->name,
           strerror(d->disk_errno));
    return PULL_EIO;
  }
  if (d->bad_range) {
    seterr(err, errlen,
           "%s: server answered 206 for a different range than "
           "requested (asked from byte %llu)",
           url, (unsigned long long)d->start);
    return PULL_EHTTP;
  }
  if (d->status >= 400 ||
      (d->checked && d->status != 200 && d->status != 206)) {
    const char *hint = d->status == 401 || d->status == 403
                           ? " (access denied: the repository may be gated "
                             "or private and need an access token)"
                       : d->status == 404 ? " (not found)"
                                          : "";
    seterr(err, errlen, "%s: HTTP %ld%s", url, d->status, hint);
    return PULL_EHTTP;
  }
  if (d->aborted) {
    seterr(err, errlen,
           "download stopped (%llu bytes kept; run again to "
           "resume)",
           (unsigned long long)d->have);
    return PULL_ENET;
  }
  if (rc == CURLE_COULDNT_RESOLVE_HOST) {
    seterr(err, errlen, "cannot resolve host of %s (DNS): %s", url,
           *ebuf ? ebuf : curl_easy_strerror(rc));
    return PULL_ENET;
  }
  if (d->have == 0)
    seterr(err, errlen, "%s: %s", url, *ebuf ? ebuf : curl_easy_strerror(rc));
  else
    seterr(err, errlen, "%s: %s (%llu bytes kept; run again to resume)", url,
           *ebuf ? ebuf : curl_easy_strerror(rc), (unsigned long long)d->have);
  return PULL_ENET;
}

/* One HTTP transfer from d->have onwards. PULL_OK when the body was received
 * completely; *progressed says whether bytes arrived. */
static pull_status attempt(dl *d, char *err, size_t errlen, int *progressed) {
  char ebuf[CURL_ERROR_SIZE] = "", range[48], ifr[300];
  struct curl_slist *hdrs = NULL;
  CURL *c = curl_easy_init();
  if (!c) {
    seterr(err, errlen, "cannot initialise libcurl");
    return PULL_EIO;
  }
  d->curl = c;
  d->start = d->have;
  d->total = 0;
  d->status = 0;
  d->checked = d->bad_range = d->disk_errno = d->aborted = 0;
  d->have_crange = 0;
  clock_gettime(CLOCK_MONOTONIC, &d->t0);
  curl_easy_setopt(c, CURLOPT_URL, d->o->url);
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(c, CURLOPT_MAXREDIRS, 10L);
  curl_easy_setopt(c, CURLOPT_USERAGENT, "hearth-pull/1");
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, ebuf);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT,
                   d->o->connect_timeout_s > 0 ? d->o->connect_timeout_s : 30L);
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME,
                   d->o->stall_timeout_s > 0 ? d->o->stall_timeout_s : 60L);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, d);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, d);
  curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_xfer);
  curl_easy_setopt(c, CURLOPT_XFERINFODATA, d);
  curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
  if (d->o->bearer && *d->o->bearer) {
    /* libcurl sends it to the first host only, never to a redirect's. */
    curl_easy_setopt(c, CURLOPT_HTTPAUTH, CURLAUTH_BEARER);
    curl_easy_setopt(c, CURLOPT_XOAUTH2_BEARER, d->o->bearer);
  }
  if (d->have > 0) {
    snprintf(range, sizeof range, "%llu-", (unsigned long long)d->have);
    curl_easy_setopt(c, CURLOPT_RANGE, range);
    if (d->if_range[0]) {
      /* The server sends the whole file (200) if it changed since. */
      snprintf(ifr, sizeof ifr, "If-Range: %s", d->if_range);
      hdrs = curl_slist_append(NULL, ifr);
      curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    }
  }
  CURLcode rc = curl_easy_perform(c);
  d->r->attempts++;
  d->r->http_status = d->status;
  *progressed = d->have > d->start;
  pull_status st = PULL_OK;
  if (rc == CURLE_OK && !d->checked)
    check_response(d); /* empty body: still judge the status */
  if (rc != CURLE_OK || (d->status != 200 && d->status != 206)) {
    /* 416 on a complete part: the server has nothing more to send. */
    if (d->status == 416 && d->have_crange && d->cr_total == d->have &&
        d->have > 0) {
      d->total = d->have;
      st = PULL_OK;
    } else {
      st = transfer_error(d, rc, ebuf, err, errlen);
    }
  } else if (d->total && d->have != d->total) {
    seterr(err, errlen, "%s: got %llu of %llu bytes", d->o->url,
           (unsigned long long)d->have, (unsigned long long)d->total);
    st = PULL_ENET;
  }
  curl_easy_cleanup(c);
  curl_slist_free_all(hdrs);
  d->curl = NULL;
  return st;
}

static int lower_hex64(const char *s) {
  if (strlen(s) != 64)
    return 0;
  for (int i = 0; i < 64; i++)
    if (!isxdigit((unsigned char)s[i]))
      return 0;
  return 1;
}

/* 1 if the first four bytes of fd are "GGUF". */
static int has_gguf_magic(int fd) {
  char m[4];
  return pread(fd, m, 4, 0) == 4 && !memcmp(m, "GGUF", 4);
}

static int fsync_dir(const char *dir) {
  int fd = open(dir, O_RDONLY | O_DIRECTORY);
  if (fd < 0)
    return -1;
  int rc = fsync(fd);
  close(fd);
  return rc;
}

/* Checks (magic, digest) the complete part, then fsync + rename. */
static pull_status finish(dl *d, const char *part, char *err, size_t errlen) {
  const pull_opts *o = d->o;
  sha_hex(&d->sha, d->r->sha256);
  d->r->bytes = d->have;
  if (!has_gguf_magic(d->fd)) {
    drop_part(d, part);
    seterr(err, errlen,
           "%s is not a GGUF file (no 'GGUF' magic at its "
           "start); nothing saved",
           o->url);
    return PULL_ENOTGGUF;
  }
  const char *want = o->sha256          ? o->sha256
                     : d->linked_sha[0] ? d->linked_sha
                                        : NULL;
  if (want && strcasecmp(want, d->r->sha256)) {
    drop_part(d, part);
    seterr(err, errlen,
           "SHA-256 mismatch for %s: expected %s%s, got %s; "
           "nothing saved",
           o->url, want, o->sha256 ? "" : " (the server's X-Linked-Etag)",
           d->r->sha256);
    return PULL_ECHECKSUM;
  }
  d->r->sha256_checked = want != NULL;
  if (fsync(d->fd) || rename(part, d->r->path) || fsync_dir(o->models_dir)) {
    seterr(err, errlen, "cannot save %s: %s", d->r->path, strerror(errno));
    return errno == ENOSPC ? PULL_ENOSPC : PULL_EIO;
  }
  unlink(d->meta);
  return PULL_OK;
}

/* <name>.gguf already there: verify it rather than download again. */
static pull_status verify_existing(dl *d, char *err, size_t errlen) {
  struct stat st;
  d->fd = open(d->r->path, O_RDONLY | O_CLOEXEC);
  if (d->fd < 0 || fstat(d->fd, &st)) {
    seterr(err, errlen, "cannot read %s: %s", d->r->path, strerror(errno));
    return PULL_EIO;
  }
  d->r->already = 1;
  d->r->bytes = (uint64_t)st.st_size;
  if (!has_gguf_magic(d->fd)) {
    seterr(err, errlen, "%s exists and is not a GGUF file; remove it first",
           d->r->path);
    return PULL_ENOTGGUF;
  }
  if (hash_file(d, (uint64_t)st.st_size)) {
    seterr(err, errlen, "cannot read %s: %s", d->r->path, strerror(errno));
    return PULL_EIO;
  }
  sha_hex(&d->sha, d->r->sha256);
  if (d->o->sha256 && strcasecmp(d->o->sha256, d->r->sha256)) {
    seterr(err, errlen,
           "%s exists with SHA-256 %s, expected %s; remove it "
           "to download again",
           d->r->path, d->r->sha256, d->o->sha256);
    return PULL_ECHECKSUM;
  }
  d->r->sha256_checked = d->o->sha256 != NULL;
  return PULL_OK;
}

static pull_status check_opts(const pull_opts *o, char *err, size_t errlen) {
  if (!o->url || (strncasecmp(o->url, "http://", 7) &&
                  strncasecmp(o->url, "https://", 8))) {
    seterr(err, errlen, "url must start with http:// or https://");
    return PULL_EINVAL;
  }
  if (!o->name || !pull_name_ok(o->name)) {
    seterr(err, errlen,
           "invalid model name '%s' (1-128 of A-Z a-z 0-9 . _ "
           "-, not starting with '.' or '-')",
           o->name ? o->name : "");
    return PULL_EINVAL;
  }
  if (o->sha256 && !lower_hex64(o->sha256)) {
    seterr(err, errlen, "sha256 must be 64 hex digits, got '%s'", o->sha256);
    return PULL_EINVAL;
  }
  if (!o->models_dir || !*o->models_dir || paths_mkdir_p(o->models_dir)) {
    seterr(err, errlen, "cannot create models directory '%s': %s",
           o->models_dir ? o->models_dir : "", strerror(errno));
    return PULL_EINVAL;
  }
  return PULL_OK;
}

/* Opens (creating) the part file and hashes what it already holds. */
static pull_status open_part(dl *d, const char *part, char *err,
                             size_t errlen) {
  struct stat st;
  d->fd = open(part, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (d->fd < 0 || fstat(d->fd, &st) ||
      lseek(d->fd, 0, SEEK_END) != st.st_size) {
    seterr(err, errlen, "cannot open %s: %s", part, strerror(errno));
    return errno == ENOSPC ? PULL_ENOSPC : PULL_EIO;
  }
  if (flock(d->fd, LOCK_EX | LOCK_NB)) {
    seterr(err, errlen, "%s is being downloaded by another process",
           d->o->name);
    return PULL_EBUSY;
  }
  d->have = (uint64_t)st.st_size;
  if (d->have > 0 && read_meta(d)) {
    /* The part came from another URL: its bytes are not this file's. */
    if (truncate_part(d)) {
      seterr(err, errlen, "cannot truncate %s: %s", part, strerror(errno));
      return PULL_EIO;
    }
    d->r->restarted = 1;
  }
  if (hash_file(d, d->have)) {
    seterr(err, errlen, "cannot read %s: %s", part, strerror(errno));
    return PULL_EIO;
  }
  d->r->resumed_from = d->have;
  return PULL_OK;
}

static pull_status download(dl *d, const char *part, char *err, size_t errlen) {
  pull_status st = open_part(d, part, err, errlen);
  if (st)
    return st; /* the part may belong to another pull: leave it */
  for (int left = d->o->retries; st == PULL_OK;) {
    int progressed = 0;
    st = attempt(d, err, errlen, &progressed);
    if (st == PULL_EHTTP && d->status == 416 && d->have > 0 &&
        !d->r->restarted) {
      /* The part is longer than the file now offered: start over. */
      if (truncate_part(d)) {
        seterr(err, errlen, "cannot truncate %s: %s", part, strerror(errno));
        return PULL_EIO;
      }
      d->r->restarted = 1;
      st = PULL_OK;
      continue;
    }
    if (st != PULL_ENET || d->aborted || !progressed || left-- <= 0)
      break;
    st = PULL_OK; /* dropped midway after progress: resume */
  }
  if (st != PULL_OK && d->fd >= 0 && d->have == 0)
    drop_part(d, part); /* nothing worth resuming */
  return st == PULL_OK ? finish(d, part, err, errlen) : st;
}

pull_status pull_download(const pull_opts *o, pull_result *r, char *err,
                          size_t errlen) {
  char part[4200];
  memset(r, 0, sizeof *r);
  if (err && errlen)
    err[0] = 0;
  pull_status st = check_opts(o, err, errlen);
  if (st)
    return st;
  if ((size_t)snprintf(r->path, sizeof r->path, "%s/%s.gguf", o->models_dir,
                       o->name) >= sizeof r->path) {
    seterr(err, errlen, "models directory path too long");
    return PULL_EINVAL;
  }
  snprintf(part, sizeof part, "%s.part", r->path);
  dl d = {.o = o, .r = r, .fd = -1};
  snprintf(d.meta, sizeof d.meta, "%s.meta", part);
  sha_reset(&d);
  if (access(r->path, F_OK) == 0)
    st = verify_existing(&d, err, errlen);
  else
    st = download(&d, part, err, errlen);
  if (d.fd >= 0)
    close(d.fd);
  return st;
}
