/* The store: projects, API keys and generic JSON objects of every kind,
 * per project. SQLite (WAL) is the default backend; the function set below
 * is the whole interface, so a PostgreSQL backend can implement it later
 * (shared SQL stays portable; SQLite-only syntax is limited to pragmas).
 *
 * Thread safety: a store is shared by all threads; each call checks a
 * connection out of a small pool, so calls may run concurrently.
 * Tenancy: every object belongs to a project; a call naming another project
 * never sees it (STORE_NOT_FOUND, exactly as if absent).
 * Knows nothing about HTTP, api_error or the platform's JSON shapes beyond
 * "an object has a string id". */
#ifndef HEARTH_STORE_STORE_H
#define HEARTH_STORE_STORE_H

#include <jansson.h>
#include <stddef.h>

#include "core/pagination.h"

typedef struct store store;

/* Return codes of every store call. */
enum store_rc {
  STORE_OK = 0,
  STORE_NOT_FOUND = 1, /* no such object / project / key (or a cursor
                          naming no object of that kind in that project) */
  STORE_EXISTS = 2,    /* unique constraint: id or name already taken */
  STORE_ERROR = -1,    /* database or I/O failure (logged to stderr) */
};

/* Creates data_dir (0700) if missing, opens <data_dir>/hearth.db in WAL
 * mode with a busy timeout, applies pending numbered migrations (table
 * schema_version) and makes sure the default project exists. Returns
 * STORE_OK and *out, or STORE_ERROR with a message in err. */
int store_open(const char *data_dir, store **out, char *err, size_t errlen);
/* Closes every pooled connection. NULL is fine. */
void store_close(store *s);

const char *store_data_dir(const store *s); /* as given to store_open */
/* Id ("proj_...") of the project named "default", created at first open. */
const char *store_default_project(const store *s);
/* Current schema version (number of migrations applied). */
int store_schema_version(store *s);

/* ---- Projects ------------------------------------------------------- */

#define STORE_NAME_MAX 128

typedef struct store_project {
  char id[64];
  char name[STORE_NAME_MAX];
  long long created_at;
} store_project;

/* Creates a project with a new "proj_" id. STORE_EXISTS if the name is
 * taken (out then describes the existing one). */
int store_project_create(store *s, const char *name, store_project *out);
int store_project_by_name(store *s, const char *name, store_project *out);
int store_project_by_id(store *s, const char *id, store_project *out);

/* ---- API keys (stored only as SHA-256 hex hashes) ------------------- */

typedef struct store_key {
  char id[64]; /* "key_..." */
  char project_id[64];
  char hash[65];     /* lowercase hex SHA-256 of the full secret */
  char redacted[32]; /* "sk-hearth-ab***xyz": safe to display */
  int admin;
  long long created_at;
} store_key;

/* Inserts k (all fields set by the caller). STORE_EXISTS on duplicate. */
int store_key_insert(store *s, const store_key *k);
/* Looks a key up by its hash: one indexed query, answered from a small
 * in-memory cache of recent hits (invalidated by every key change made
 * through this process, and entries expire after a few seconds so a key
 * deleted by another process stops working soon). */
int store_key_by_hash(store *s, const char *hash, store_key *out);
/* Number of keys in the store (cached like store_key_by_hash). */
int store_key_count(store *s, long long *out);
/* Calls fn for every key, oldest first; stops early if fn returns nonzero. */
int store_key_each(store *s, int (*fn)(const store_key *k, void *ctx),
                   void *ctx);
int store_key_delete(store *s, const char *id);

/* ---- Generic objects ------------------------------------------------ */

/* One stored object. `data` is the platform's JSON for it (what the API
 * returns); `internal` is hearth's private bookkeeping, never rendered
 * (e.g. {"blob":"...","sha256":"...","md5":"..."} for a file).
 * Conventions per kind, relied upon by the sweeper (jobs/sweeper.h):
 *   kind "file":        internal.blob = blob id of the bytes
 *   kind "upload":      data.status pending/completed/cancelled/expired
 *   kind "upload_part": filter = its upload's id, internal.blob = blob id */
typedef struct store_obj {
  char id[64];
  long long created_at; /* Unix seconds; list order, then insertion order */
  char filter[128];     /* indexed filter value ("" none), e.g. a file's
                           purpose or a chat completion's model */
  long long expires_at; /* Unix seconds, 0 = never; read by the sweeper */
  json_t *data;         /* owned reference (an object) */
  json_t *internal;     /* owned reference (an object) or NULL */
} store_obj;

/* Drops the references in o (data, internal) and zeroes it. */
void store_obj_clear(store_obj *o);

/* Inserts o, or replaces the object with the same (project, kind, id):
 * a replaced object keeps its place in list order. o stays owned by the
 * caller (references are not stolen). */
int store_put(store *s, const char *project, const char *kind,
              const store_obj *o);
/* store_put of objs[i] as kinds[i], for i < n, in one transaction: all are
 * written or none (the first failure's code is returned, e.g. STORE_EXISTS
 * for an id another project holds). One commit instead of n. */
int store_put_many(store *s, const char *project, size_t n,
                   const char *const *kinds, const store_obj *objs);
/* Like store_put but only inserts: STORE_EXISTS if the id is taken. */
int store_insert(store *s, const char *project, const char *kind,
                 const store_obj *o);
/* Fills *out (new references; store_obj_clear it). STORE_NOT_FOUND if
 * absent or in another project. */
int store_get(store *s, const char *project, const char *kind, const char *id,
              store_obj *out);
int store_delete(store *s, const char *project, const char *kind,
                 const char *id);

/* Read-modify-write in one transaction: loads the object, calls fn with it
 * (fn may change data, internal, filter, expires_at in place), writes it
 * back if fn returns 0. fn's nonzero return is passed through unchanged and
 * nothing is written (use positive values distinct from STORE_* codes, e.g.
 * 100+). STORE_NOT_FOUND if absent. Concurrent updates of one object are
 * serialized. fn runs inside the write transaction: it must not call the
 * store (other writers wait on it) and should be quick. */
typedef int (*store_update_fn)(store_obj *o, void *ctx);
int store_update(store *s, const char *project, const char *kind,
                 const char *id, store_update_fn fn, void *ctx);

/* One page of objects of a kind in a project, ordered by (created_at,
 * insertion) as p->order says; filter NULL or "" = all. after/before are
 * object ids of the same kind and project (STORE_NOT_FOUND when they name
 * none: callers answer a 400 naming the cursor). With `before`, the page is
 * the `limit` objects just before the cursor, still in p->order.
 * *out = page_render(...) of the objects' data (new reference). */
int store_list(store *s, const char *project, const char *kind,
               const char *filter, const page_params *p, json_t **out);

/* A selection beyond the indexed filter, for store_list_match. */
typedef int (*store_match_fn)(const store_obj *o, void *ctx);
typedef struct store_match {
  /* Substrings the object's stored data text (compact JSON, as jansson's
   * JSON_COMPACT writes it) must all contain: a cheap pre-filter the
   * database applies before anything is decoded, e.g. "\"k\":\"v\"" for a
   * metadata pair. It may let through objects fn refuses (ASCII letters
   * compare case-insensitively), never the reverse. NULL-terminated, or
   * NULL for none. */
  const char *const *contains;
  /* Decides (NULL: everything that passed `contains`): sees o->data
   * (internal is NULL), returns nonzero to keep the object; must not call
   * the store (it runs while a connection is held). */
  store_match_fn fn;
  void *ctx;
} store_match;

/* Like store_list, but only objects m selects are listed, paginated and
 * counted for has_more (m NULL: all). Rows are scanned in page order and
 * scanning stops once the page is full, so a selective match costs a scan
 * of the objects it skips (cheaper with `contains`). */
int store_list_match(store *s, const char *project, const char *kind,
                     const char *filter, const page_params *p,
                     const store_match *m, json_t **out);

/* Calls fn for every object of a kind in a project (filter NULL or "" =
 * all), oldest first. Rows are read before fn runs, so fn may call the
 * store (even delete the object it is given). fn returning nonzero stops.
 * Returns STORE_OK or STORE_ERROR. */
typedef int (*store_each_fn)(const char *project, store_obj *o, void *ctx);
int store_each(store *s, const char *project, const char *kind,
               const char *filter, store_each_fn fn, void *ctx);

/* Objects of a kind, in any project, whose expires_at is in (0, now]:
 * calls fn(project, obj, ctx) for at most max of them, soonest expiry
 * first, with the same "rows read first" rule as store_each. Returns the
 * number visited, or STORE_ERROR. */
int store_each_expired(store *s, const char *kind, long long now, int max,
                       store_each_fn fn, void *ctx);

#endif
