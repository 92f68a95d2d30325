/* libFuzzer target for http/router over the real route table (routes.c):
 * input = method byte, beta bit, path. Checks router_match against a
 * reference linear matcher over the same table: a path some template
 * matches (for the method) must be found; a match must really match its
 * template, with the method asked for; params are NUL-terminated, non-empty
 * slash-free path segments that route_param finds by name; a wrong-method
 * answer lists methods without the one asked for.
 * Handlers are never called (scripts/fuzz.sh links stubs for them). */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/router.h"

#define MAXSEG 64
#define PARAM_BUF sizeof(((route_params *)0)->buf)

typedef struct span {
  const char *s;
  size_t len;
} span;

/* Splits at '/', skipping empty segments; stops at '?' when stop_q. */
static int segments(const char *p, int stop_q, span *out) {
  int n = 0;
  while (*p && !(stop_q && *p == '?')) {
    if (*p == '/') {
      p++;
      continue;
    }
    const char *s = p;
    while (*p && *p != '/' && !(stop_q && *p == '?'))
      p++;
    if (n == MAXSEG)
      return -1;
    out[n].s = s;
    out[n].len = (size_t)(p - s);
    n++;
  }
  return n;
}

static int is_param(span t) {
  return t.len >= 2 && t.s[0] == '{' && t.s[t.len - 1] == '}';
}

/* Whether template tpl matches the path segments ps[0..np). */
static int tpl_matches(const char *tpl, const span *ps, int np) {
  span ts[MAXSEG];
  int nt = segments(tpl, 1, ts);
  if (nt != np)
    return 0;
  for (int i = 0; i < nt; i++)
    if (!is_param(ts[i]) &&
        (ts[i].len != ps[i].len || memcmp(ts[i].s, ps[i].s, ps[i].len)))
      return 0;
  return 1;
}

static router *R;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  R = router_new(routes, routes_count);
  assert(R);
  return 0;
}

static void check_ok(const route *rt, enum route_method m, const char *path,
                     const route_params *p) {
  span ps[MAXSEG];
  int np = segments(path, 0, ps);
  assert(rt && rt->method == m);
  assert(tpl_matches(rt->path, ps, np));
  assert(p->n >= 0 && p->n <= ROUTE_MAX_PARAMS);
  for (int k = 0; k < p->n; k++) {
    const char *v = p->value[k];
    assert(v >= p->buf && v < p->buf + sizeof p->buf);
    assert(memchr(v, '\0', (size_t)(p->buf + sizeof p->buf - v)));
    assert(*v && !strchr(v, '/'));
    char name[128];
    assert(p->name_len[k] < sizeof name);
    memcpy(name, p->name[k], p->name_len[k]);
    name[p->name_len[k]] = '\0';
    const char *got = route_param(p, name);
    assert(got && !strcmp(got, v));
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1)
    return 0;
  enum route_method m = (enum route_method)(data[0] % (M_COUNT + 1));
  int beta = (data[0] >> 4) & 1;
  char path[2048];
  size_t n = size - 1 < sizeof path - 1 ? size - 1 : sizeof path - 1;
  memcpy(path, data + 1, n);
  path[n] = '\0';

  const route *out = NULL;
  route_params params;
  char allow[64];
  enum route_match r =
      router_match(R, m, path, beta, &out, &params, allow, sizeof allow);

  span ps[MAXSEG];
  int np = segments(path, 0, ps);
  int ref = 0, any_method = 0;
  size_t param_bytes = 0;
  for (size_t i = 0; np >= 0 && np <= 16 && i < routes_count; i++)
    if (tpl_matches(routes[i].path, ps, np)) {
      any_method = 1;
      if (routes[i].method == m)
        ref = 1;
    }
  for (int i = 0; np > 0 && i < np; i++)
    param_bytes += ps[i].len + 1;

  if (r == MATCH_OK) {
    check_ok(out, m, path, &params);
  } else if (r == MATCH_BAD_METHOD) {
    assert(any_method && !ref);
    assert(allow[0] != '\0');
    if (m < M_COUNT)
      assert(!strstr(allow, route_method_name(m)));
  } else {
    /* Not found: no template matches, or the params would not fit. */
    assert(!ref || param_bytes > PARAM_BUF);
    assert(!any_method || param_bytes > PARAM_BUF || ref);
  }
  if (ref && param_bytes <= PARAM_BUF)
    assert(r == MATCH_OK);
  return 0;
}
