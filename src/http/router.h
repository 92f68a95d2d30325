/* The route table and its matcher. One table (routes.c) lists every
 * operation of the platform API, Redis-command-table style; router.c turns
 * it into a segment trie once at start-up so matching a request is a walk
 * over its path segments: no regex, no allocation per request.
 * Knows nothing about libmicrohttpd or the store: a handler is an
 * api_handler (api/api.h). */
#ifndef HEARTH_HTTP_ROUTER_H
#define HEARTH_HTTP_ROUTER_H

#include <stddef.h>

#include "api/api.h"

enum route_method { M_GET, M_POST, M_DELETE, M_COUNT, M_OTHER = M_COUNT };
enum route_scope { SCOPE_USER, SCOPE_ADMIN };

typedef struct route {
  enum route_method method;
  const char *path;    /* template without /v1, "/files/{file_id}"; may end
                          in "?beta=true" (matched on the query string) */
  const char *op;      /* operationId from operations.tsv */
  api_handler handler; /* NULL: not implemented yet (answered 501) */
  enum route_scope scope;
  unsigned flags; /* ROUTE_FORM */
} route;

/* The operation takes multipart/form-data (file uploads stream to disk up
 * to --max-upload); other operations refuse a multipart body up front. */
#define ROUTE_FORM 1u

extern const route routes[];
extern const size_t routes_count;

#define ROUTE_MAX_PARAMS API_MAX_PARAMS
typedef api_params route_params;

typedef struct router router;

/* Builds the trie from a table; NULL on allocation failure or a malformed
 * table (duplicate operation for one method and path). */
router *router_new(const route *table, size_t n);
void router_free(router *r);

enum route_match {
  MATCH_OK,         /* *out set, params filled */
  MATCH_NO_PATH,    /* no template has this path */
  MATCH_BAD_METHOD, /* a template has it, not for this method; see allow */
};

/* Matches method + path (without /v1, without query). beta: whether the
 * query string carries beta=true (selects the "?beta=true" variants, falling
 * back to the plain operation). allow receives "GET, POST" for
 * MATCH_BAD_METHOD (may be NULL). */
enum route_match router_match(const router *r, enum route_method m,
                              const char *path, int beta, const route **out,
                              route_params *params, char *allow,
                              size_t allow_len);

enum route_method route_method_parse(const char *s);
const char *route_method_name(enum route_method m);

/* Value of path parameter name, or NULL. */
const char *route_param(const route_params *p, const char *name);

#endif
