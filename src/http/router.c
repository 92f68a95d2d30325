/* Route matcher: a trie of path segments built once from the route table.
 * Static segments are preferred over {param} segments, with backtracking, so
 * "/videos/characters" wins over "/videos/{video_id}" but "/responses/x"
 * still reaches "/responses/{response_id}". Knows nothing about HTTP
 * transport. */
#include "http/router.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct rnode {
  const char *seg; /* static segment (not NUL-terminated), NULL for a param */
  size_t seg_len;
  struct rnode *kids;  /* static children, linked through next */
  struct rnode *param; /* the {param} child, if any */
  struct rnode *next;
  const route *op[M_COUNT];   /* plain operations at this path */
  const route *beta[M_COUNT]; /* "?beta=true" variants */
} rnode;

struct router {
  rnode root;
};

static const char *const method_names[M_COUNT] = {"GET", "POST", "DELETE"};

enum route_method route_method_parse(const char *s) {
  for (int i = 0; i < M_COUNT; i++)
    if (!strcmp(s, method_names[i]))
      return (enum route_method)i;
  return M_OTHER;
}

const char *route_method_name(enum route_method m) {
  return m < M_COUNT ? method_names[m] : "OTHER";
}

/* ---------------------------------------------------------------- build */

static void node_free(rnode *n) {
  rnode *k = n->kids;
  while (k) {
    rnode *next = k->next;
    node_free(k);
    free(k);
    k = next;
  }
  if (n->param) {
    node_free(n->param);
    free(n->param);
  }
}

static rnode *child_for(rnode *n, const char *seg, size_t len) {
  if (len >= 2 && seg[0] == '{' && seg[len - 1] == '}') {
    if (!n->param)
      n->param = calloc(1, sizeof *n->param);
    return n->param;
  }
  for (rnode *k = n->kids; k; k = k->next)
    if (k->seg_len == len && !memcmp(k->seg, seg, len))
      return k;
  rnode *k = calloc(1, sizeof *k);
  if (!k)
    return NULL;
  k->seg = seg;
  k->seg_len = len;
  k->next = n->kids;
  n->kids = k;
  return k;
}

static int insert(router *r, const route *rt) {
  rnode *n = &r->root;
  const char *p = rt->path;
  const char *q = strchr(p, '?');
  const char *end = q ? q : p + strlen(p);
  while (p < end) {
    if (*p == '/')
      p++;
    const char *s = p;
    while (p < end && *p != '/')
      p++;
    if (p == s)
      continue;
    if (!(n = child_for(n, s, (size_t)(p - s))))
      return -1;
  }
  const route **slot = q ? &n->beta[rt->method] : &n->op[rt->method];
  if (rt->method >= M_COUNT || *slot)
    return -1;
  *slot = rt;
  return 0;
}

router *router_new(const route *table, size_t n) {
  router *r = calloc(1, sizeof *r);
  if (!r)
    return NULL;
  for (size_t i = 0; i < n; i++)
    if (insert(r, &table[i]) < 0) {
      router_free(r);
      return NULL;
    }
  return r;
}

void router_free(router *r) {
  if (!r)
    return;
  node_free(&r->root);
  free(r);
}

/* ---------------------------------------------------------------- match */

typedef struct seg {
  const char *s;
  size_t len;
} seg;

#define MAX_SEGS 16

static int has_any(const rnode *n) {
  for (int i = 0; i < M_COUNT; i++)
    if (n->op[i] || n->beta[i])
      return 1;
  return 0;
}

/* Walks segs[i..] below n. Returns the node of a full match that has the
 * method, else NULL; *path_hit receives the first node that matched the
 * path at all (for 404 vs wrong method). pidx records which segments were
 * params. */
static const rnode *walk(const rnode *n, const seg *segs, int i, int nseg,
                         enum route_method m, int *pidx, int *np,
                         const rnode **path_hit) {
  if (i == nseg) {
    if (!has_any(n))
      return NULL;
    if (!*path_hit)
      *path_hit = n;
    return (m < M_COUNT && (n->op[m] || n->beta[m])) ? n : NULL;
  }
  for (const rnode *k = n->kids; k; k = k->next)
    if (k->seg_len == segs[i].len && !memcmp(k->seg, segs[i].s, k->seg_len)) {
      const rnode *r = walk(k, segs, i + 1, nseg, m, pidx, np, path_hit);
      if (r)
        return r;
      break;
    }
  if (n->param && *np < ROUTE_MAX_PARAMS) {
    pidx[(*np)++] = i;
    const rnode *r = walk(n->param, segs, i + 1, nseg, m, pidx, np, path_hit);
    if (r)
      return r;
    (*np)--;
  }
  return NULL;
}

static int split(const char *path, seg *segs) {
  int n = 0;
  const char *p = path;
  while (*p) {
    if (*p == '/') {
      p++;
      continue;
    }
    const char *s = p;
    while (*p && *p != '/')
      p++;
    if (n == MAX_SEGS)
      return -1;
    segs[n].s = s;
    segs[n].len = (size_t)(p - s);
    n++;
  }
  return n;
}

/* Names of the {params} of a template, in order. */
static void template_names(const char *tpl, route_params *p) {
  int k = 0;
  for (const char *c = tpl; *c && *c != '?' && k < p->n; c++)
    if (*c == '{') {
      const char *e = strchr(c, '}');
      p->name[k] = c + 1;
      p->name_len[k] = e ? (size_t)(e - c - 1) : 0;
      k++;
    }
}

static int fill_params(const route *rt, const seg *segs, const int *pidx,
                       int np, route_params *p) {
  size_t off = 0;
  p->n = np;
  for (int k = 0; k < np; k++) {
    const seg *s = &segs[pidx[k]];
    if (off + s->len + 1 > sizeof p->buf)
      return -1;
    memcpy(p->buf + off, s->s, s->len);
    p->buf[off + s->len] = 0;
    p->value[k] = p->buf + off;
    off += s->len + 1;
  }
  template_names(rt->path, p);
  return 0;
}

static void allow_list(const rnode *n, char *allow, size_t len) {
  size_t off = 0;
  allow[0] = 0;
  for (int i = 0; i < M_COUNT; i++) {
    if (!n->op[i] && !n->beta[i])
      continue;
    int w = snprintf(allow + off, len - off, "%s%s", off ? ", " : "",
                     method_names[i]);
    if (w < 0 || (size_t)w >= len - off)
      return;
    off += (size_t)w;
  }
}

enum route_match router_match(const router *r, enum route_method m,
                              const char *path, int beta, const route **out,
                              route_params *params, char *allow,
                              size_t allow_len) {
  seg segs[MAX_SEGS];
  int pidx[ROUTE_MAX_PARAMS], np = 0;
  const rnode *hit = NULL;
  int nseg = split(path, segs);
  if (nseg < 0)
    return MATCH_NO_PATH;
  const rnode *n = walk(&r->root, segs, 0, nseg, m, pidx, &np, &hit);
  if (!n) {
    if (!hit)
      return MATCH_NO_PATH;
    if (allow && allow_len)
      allow_list(hit, allow, allow_len);
    return MATCH_BAD_METHOD;
  }
  const route *rt = (beta && n->beta[m]) ? n->beta[m] : n->op[m];
  if (!rt)
    rt = n->beta[m];
  if (fill_params(rt, segs, pidx, np, params) < 0)
    return MATCH_NO_PATH;
  *out = rt;
  return MATCH_OK;
}

const char *route_param(const route_params *p, const char *name) {
  size_t len = strlen(name);
  for (int k = 0; k < p->n; k++)
    if (p->name_len[k] == len && !memcmp(p->name[k], name, len))
      return p->value[k];
  return NULL;
}
