/* libFuzzer target for http/multipart: the first bytes of the input choose
 * a boundary and a sequence of chunk sizes; the rest is the body, fed to the
 * streaming parser in those random splits. Checks that the parse outcome and
 * the bytes delivered to the callbacks do not depend on how the body was
 * split (a one-shot parse is the reference), that callbacks nest properly
 * (begin, data*, end), that parts' fields are NUL-terminated, and that a
 * callback asking to stop ends the parse with MP_ERR_ABORTED.
 * Also fuzzes mp_boundary_from_content_type on the input's first line.
 * Pure computation, no I/O; built by scripts/fuzz.sh. */
#include <assert.h>
#include <stdint.h>
#include <string.h>

#include "http/multipart.h"

typedef struct trace {
  uint64_t hash; /* FNV-1a over every event and data byte */
  size_t bytes;
  int parts;
  int open;     /* inside a part */
  int abort_at; /* callback number that says stop (0: never) */
  int calls;
} trace;

/* Counts a callback; nonzero when this one must ask the parser to stop. */
static int stop_here(trace *t) {
  return t->abort_at && ++t->calls == t->abort_at;
}

static void mix(trace *t, const void *p, size_t n) {
  const unsigned char *c = p;
  for (size_t i = 0; i < n; i++)
    t->hash = (t->hash ^ c[i]) * 1099511628211ULL;
}

static int on_begin(void *u, const mp_part *part) {
  trace *t = u;
  assert(!t->open);
  assert(memchr(part->name, '\0', sizeof part->name));
  assert(memchr(part->filename, '\0', sizeof part->filename));
  assert(memchr(part->content_type, '\0', sizeof part->content_type));
  t->open = 1;
  t->parts++;
  mix(t, "B", 1);
  mix(t, part->name, strlen(part->name) + 1);
  mix(t, part->filename, strlen(part->filename) + 1);
  mix(t, part->content_type, strlen(part->content_type) + 1);
  mix(t, &part->has_filename, sizeof part->has_filename);
  return stop_here(t);
}

static int on_data(void *u, const char *d, size_t n) {
  trace *t = u;
  assert(t->open);
  mix(t, d, n);
  t->bytes += n;
  return stop_here(t);
}

static int on_end(void *u) {
  trace *t = u;
  assert(t->open);
  t->open = 0;
  mix(t, "E", 1);
  return stop_here(t);
}

static const mp_callbacks kCb = {on_begin, on_data, on_end};

typedef struct outcome {
  trace t;
  enum mp_status feed; /* first non-OK status from mp_feed, or MP_OK */
  enum mp_status fin;  /* mp_finish when feeding stayed OK */
  int done;
} outcome;

/* Feeds body in chunks whose sizes cycle through splits (0: one shot). */
static outcome run(const char *boundary, const uint8_t *body, size_t n,
                   const uint8_t *splits, size_t nsplits, int abort_at) {
  outcome o;
  memset(&o, 0, sizeof o);
  o.t.hash = 1469598103934665603ULL;
  o.t.abort_at = abort_at;
  mp_parser p;
  if (mp_init(&p, boundary, &kCb, &o.t) != 0) {
    o.feed = MP_ERR_SYNTAX;
    return o;
  }
  size_t off = 0, k = 0;
  while (off < n) {
    size_t len = nsplits ? (size_t)splits[k++ % nsplits] % 64 + 1 : n;
    if (len > n - off)
      len = n - off;
    o.feed = mp_feed(&p, (const char *)body + off, len);
    off += len;
    if (o.feed != MP_OK)
      break;
  }
  if (o.feed == MP_OK) {
    o.done = mp_done(&p);
    o.fin = mp_finish(&p);
    assert(o.fin != MP_OK || o.done);
  } else {
    assert(mp_error(&p) != NULL || o.feed == MP_ERR_ABORTED);
  }
  return o;
}

static void content_type(const uint8_t *data, size_t size) {
  char line[512], out[MP_MAX_BOUNDARY + 1];
  size_t n = 0;
  while (n < size && n < sizeof line - 1 && data[n] != '\n')
    n++;
  memcpy(line, data, n);
  line[n] = '\0';
  if (mp_boundary_from_content_type(line, out, sizeof out) == 0) {
    size_t bl = strnlen(out, sizeof out);
    assert(bl >= 1 && bl <= MP_MAX_BOUNDARY);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  content_type(data, size);
  /* Layout: [blen][boundary][nsplits][splits...][body]. */
  if (size < 2)
    return 0;
  size_t blen = data[0] % (MP_MAX_BOUNDARY + 2); /* includes invalid 0, 71 */
  if (size < 1 + blen + 1)
    return 0;
  char boundary[MP_MAX_BOUNDARY + 2];
  memcpy(boundary, data + 1, blen);
  boundary[blen] = '\0';
  size_t nsplits = data[1 + blen] % 16;
  const uint8_t *splits = data + 2 + blen;
  if (size < 2 + blen + nsplits)
    return 0;
  const uint8_t *body = splits + nsplits;
  size_t n = size - (2 + blen + nsplits);
  outcome whole = run(boundary, body, n, NULL, 0, 0);
  outcome split = run(boundary, body, n, splits, nsplits, 0);
  outcome bytewise = run(boundary, body, n, (const uint8_t *)"\0", 1, 0);
  /* A callback that says stop must stop the parse with MP_ERR_ABORTED and
   * get no further callbacks (the count stays where it said stop). */
  int abort_at = (int)(data[0] % 5) + 1;
  outcome stopped = run(boundary, body, n, splits, nsplits, abort_at);
  if (stopped.t.calls >= abort_at) {
    assert(stopped.t.calls == abort_at);
    assert(stopped.feed == MP_ERR_ABORTED || stopped.fin == MP_ERR_ABORTED);
  }
  assert(whole.feed == split.feed && whole.feed == bytewise.feed);
  if (whole.feed == MP_OK) {
    assert(whole.fin == split.fin && whole.fin == bytewise.fin);
    assert(whole.done == split.done && whole.done == bytewise.done);
  }
  if (whole.feed == MP_OK && whole.fin == MP_OK) {
    assert(whole.t.hash == split.t.hash && whole.t.hash == bytewise.t.hash);
    assert(whole.t.bytes == split.t.bytes && whole.t.parts == split.t.parts);
  }
  return 0;
}
