/* The SQLite backend of store/store.h: a pool of connections to one WAL
 * database, numbered schema migrations, projects, API keys (with a small
 * in-memory cache of recent hits) and generic JSON objects with the shared
 * cursor pagination. Shared queries use portable SQL (no SQLite-only syntax
 * beyond PRAGMAs) so a PostgreSQL backend can reuse them.
 * Knows nothing about HTTP, api_error or the platform's JSON shapes. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/ids.h"
#include "core/paths.h"
#include "store/store.h"

#define POOL_MAX 8 /* connections; HTTP runs a few threads */
#define BUSY_TIMEOUT_MS 10000
#define KEY_CACHE_SLOTS 64 /* direct-mapped by hash prefix */
#define KEY_CACHE_TTL_NS 5000000000LL
#define EACH_BATCH 100

typedef struct key_slot {
  long long expires_ns; /* 0 = empty */
  store_key key;
} key_slot;

struct store {
  char *data_dir;
  char db_path[4096];
  char default_project[64];

  pthread_mutex_t pool_mu; /* guards the pool */
  pthread_cond_t pool_cv;
  sqlite3 *idle[POOL_MAX]; /* stack of idle connections */
  int n_idle, n_open;

  pthread_mutex_t cache_mu; /* guards keys[] and the key count */
  key_slot keys[KEY_CACHE_SLOTS];
  long long count_value, count_expires_ns;
};

/* ===================================================================
 * Connections
 * =================================================================== */

static long long now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void log_db(sqlite3 *db, const char *what) {
  fprintf(stderr, "store: %s: %s\n", what, db ? sqlite3_errmsg(db) : "?");
}

static int exec(sqlite3 *db, const char *sql) {
  char *msg = NULL;
  if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
    fprintf(stderr, "store: %s: %s\n", sql, msg ? msg : "?");
    sqlite3_free(msg);
    return STORE_ERROR;
  }
  return STORE_OK;
}

static sqlite3 *conn_open(const char *path) {
  sqlite3 *db = NULL;
  int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX |
              SQLITE_OPEN_PRIVATECACHE;
  if (sqlite3_open_v2(path, &db, flags, NULL) != SQLITE_OK) {
    log_db(db, path);
    sqlite3_close(db);
    return NULL;
  }
  sqlite3_busy_timeout(db, BUSY_TIMEOUT_MS);
  /* WAL: readers never block the writer; NORMAL sync is durable against
   * crashes of the process and never corrupts on power loss. */
  if (exec(db, "PRAGMA journal_mode=WAL") ||
      exec(db, "PRAGMA synchronous=NORMAL") ||
      exec(db, "PRAGMA foreign_keys=ON") ||
      /* 1 MiB page cache per connection (SQLite's default is 2 MiB): the
       * OS page cache backs it, and server RSS stays small. */
      exec(db, "PRAGMA cache_size=-1024")) {
    sqlite3_close(db);
    return NULL;
  }
  return db;
}

/* Checks a connection out of the pool, opening one if below POOL_MAX,
 * waiting otherwise. NULL only if opening fails. */
static sqlite3 *conn_get(store *s) {
  pthread_mutex_lock(&s->pool_mu);
  while (s->n_idle == 0 && s->n_open >= POOL_MAX)
    pthread_cond_wait(&s->pool_cv, &s->pool_mu);
  if (s->n_idle > 0) {
    sqlite3 *db = s->idle[--s->n_idle];
    pthread_mutex_unlock(&s->pool_mu);
    return db;
  }
  s->n_open++;
  pthread_mutex_unlock(&s->pool_mu);
  sqlite3 *db = conn_open(s->db_path);
  if (!db) {
    pthread_mutex_lock(&s->pool_mu);
    s->n_open--;
    pthread_cond_signal(&s->pool_cv);
    pthread_mutex_unlock(&s->pool_mu);
  }
  return db;
}

static void conn_put(store *s, sqlite3 *db) {
  /* Invariant: an idle connection holds no open statement or transaction
   * (either would pin a WAL snapshot or the write lock). */
  for (sqlite3_stmt *st = sqlite3_next_stmt(db, NULL); st;
       st = sqlite3_next_stmt(db, st))
    if (sqlite3_stmt_busy(st))
      sqlite3_reset(st);
  if (!sqlite3_get_autocommit(db)) /* a failed path left a transaction */
    sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
  pthread_mutex_lock(&s->pool_mu);
  s->idle[s->n_idle++] = db;
  pthread_cond_signal(&s->pool_cv);
  pthread_mutex_unlock(&s->pool_mu);
}

/* Statements are cached per connection: SQLite already lists a
 * connection's statements (sqlite3_next_stmt), so a finished statement with
 * the same SQL text is reset and reused instead of parsed again. */
#define STMT_CACHE_MAX 48

static sqlite3_stmt *prep(sqlite3 *db, const char *sql) {
  sqlite3_stmt *st, *spare = NULL;
  int n = 0;
  for (st = sqlite3_next_stmt(db, NULL); st; st = sqlite3_next_stmt(db, st)) {
    if (sqlite3_stmt_busy(st))
      continue;
    if (!strcmp(sqlite3_sql(st), sql)) {
      sqlite3_reset(st);
      sqlite3_clear_bindings(st);
      return st;
    }
    spare = st;
    n++;
  }
  if (n >= STMT_CACHE_MAX && spare)
    sqlite3_finalize(spare);
  st = NULL;
  if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL) !=
      SQLITE_OK) {
    log_db(db, sql);
    sqlite3_finalize(st);
    return NULL;
  }
  return st;
}

/* Hands a statement back to the cache (ends its read, frees bindings). */
static void release(sqlite3_stmt *st) {
  if (!st)
    return;
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
}

static void conn_close(sqlite3 *db) {
  sqlite3_stmt *st;
  while ((st = sqlite3_next_stmt(db, NULL)))
    sqlite3_finalize(st);
  sqlite3_close(db);
}

static void bind_text(sqlite3_stmt *st, int i, const char *v) {
  sqlite3_bind_text(st, i, v ? v : "", -1, SQLITE_TRANSIENT);
}

static void copy_col(char *dst, size_t n, sqlite3_stmt *st, int col) {
  const unsigned char *v = sqlite3_column_text(st, col);
  snprintf(dst, n, "%s", v ? (const char *)v : "");
}

/* Runs a statement that returns no rows: STORE_OK, STORE_EXISTS on a
 * constraint violation, STORE_ERROR otherwise. Finalizes st. */
static int step_done(sqlite3 *db, sqlite3_stmt *st) {
  int rc = sqlite3_step(st);
  release(st);
  if (rc == SQLITE_DONE)
    return STORE_OK;
  if ((rc & 0xff) == SQLITE_CONSTRAINT)
    return STORE_EXISTS;
  log_db(db, "step");
  return STORE_ERROR;
}

/* ===================================================================
 * Schema migrations: migrations[i] brings the schema to version i + 1.
 * Append only; never edit an applied one.
 * =================================================================== */

static const char *const migrations[] = {
    /* 1: projects, keys, generic objects */
    "CREATE TABLE projects ("
    "  id TEXT PRIMARY KEY,"
    "  name TEXT NOT NULL UNIQUE,"
    "  created_at BIGINT NOT NULL);"
    "CREATE TABLE api_keys ("
    "  id TEXT PRIMARY KEY,"
    "  project_id TEXT NOT NULL REFERENCES projects(id),"
    "  hash TEXT NOT NULL UNIQUE,"
    "  redacted TEXT NOT NULL,"
    "  admin INTEGER NOT NULL DEFAULT 0,"
    "  created_at BIGINT NOT NULL);"
    "CREATE TABLE objects ("
    "  seq INTEGER PRIMARY KEY,"
    "  project_id TEXT NOT NULL,"
    "  kind TEXT NOT NULL,"
    "  id TEXT NOT NULL,"
    "  created_at BIGINT NOT NULL,"
    "  filter TEXT NOT NULL DEFAULT '',"
    "  expires_at BIGINT NOT NULL DEFAULT 0,"
    "  data TEXT NOT NULL,"
    "  internal TEXT,"
    "  UNIQUE (kind, id));"
    "CREATE INDEX objects_list ON objects (project_id, kind, created_at, seq);"
    "CREATE INDEX objects_filter ON objects"
    "  (project_id, kind, filter, created_at, seq);"
    "CREATE INDEX objects_expiry ON objects (kind, expires_at)"
    "  WHERE expires_at > 0;",
};
#define N_MIGRATIONS ((int)(sizeof migrations / sizeof *migrations))

static int schema_version_of(sqlite3 *db) {
  sqlite3_stmt *st = prep(db, "SELECT MAX(version) FROM schema_version");
  if (!st)
    return -1;
  int v = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : -1;
  release(st);
  return v;
}

/* Applies pending migrations in one write transaction (so two processes
 * opening one fresh directory at once cannot both apply them). */
static int migrate(sqlite3 *db) {
  if (exec(db, "BEGIN IMMEDIATE"))
    return STORE_ERROR;
  if (exec(db, "CREATE TABLE IF NOT EXISTS schema_version ("
               " version INTEGER NOT NULL, applied_at BIGINT NOT NULL)"))
    goto fail;
  int v = schema_version_of(db);
  if (v < 0)
    goto fail;
  if (v > N_MIGRATIONS) {
    fprintf(stderr,
            "store: database schema %d is newer than this hearth "
            "(%d)\n",
            v, N_MIGRATIONS);
    goto fail;
  }
  for (; v < N_MIGRATIONS; v++) {
    if (exec(db, migrations[v]))
      goto fail;
    sqlite3_stmt *st = prep(db, "INSERT INTO schema_version (version, "
                                "applied_at) VALUES (?, ?)");
    if (!st)
      goto fail;
    sqlite3_bind_int(st, 1, v + 1);
    sqlite3_bind_int64(st, 2, (long long)time(NULL));
    if (step_done(db, st) != STORE_OK)
      goto fail;
  }
  return exec(db, "COMMIT");
fail:
  sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
  return STORE_ERROR;
}

int store_schema_version(store *s) {
  sqlite3 *db = conn_get(s);
  if (!db)
    return STORE_ERROR;
  int v = schema_version_of(db);
  conn_put(s, db);
  return v;
}

/* ===================================================================
 * Open / close
 * =================================================================== */

static int ensure_default_project(store *s) {
  store_project p;
  int rc = store_project_create(s, "default", &p);
  if (rc != STORE_OK && rc != STORE_EXISTS)
    return STORE_ERROR;
  snprintf(s->default_project, sizeof s->default_project, "%s", p.id);
  return STORE_OK;
}

int store_open(const char *data_dir, store **out, char *err, size_t errlen) {
  *out = NULL;
  if (paths_mkdir_p(data_dir) != 0) {
    snprintf(err, errlen, "cannot create data directory %s: %s", data_dir,
             strerror(errno));
    return STORE_ERROR;
  }
  store *s = calloc(1, sizeof *s);
  if (!s || !(s->data_dir = strdup(data_dir))) {
    free(s);
    snprintf(err, errlen, "out of memory");
    return STORE_ERROR;
  }
  snprintf(s->db_path, sizeof s->db_path, "%s/hearth.db", data_dir);
  /* Created 0600 before SQLite sees it (its -wal/-shm inherit the mode):
   * key hashes and every tenant's objects live here. */
  int fd = open(s->db_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd >= 0)
    close(fd);
  pthread_mutex_init(&s->pool_mu, NULL);
  pthread_cond_init(&s->pool_cv, NULL);
  pthread_mutex_init(&s->cache_mu, NULL);
  sqlite3 *db = conn_get(s);
  if (!db) {
    snprintf(err, errlen, "cannot open database %s", s->db_path);
    store_close(s);
    return STORE_ERROR;
  }
  int rc = migrate(db);
  conn_put(s, db);
  if (rc != STORE_OK || ensure_default_project(s) != STORE_OK) {
    snprintf(err, errlen, "cannot initialize database %s (see log)",
             s->db_path);
    store_close(s);
    return STORE_ERROR;
  }
  *out = s;
  return STORE_OK;
}

void store_close(store *s) {
  if (!s)
    return;
  /* Invariant: every connection is idle here (callers finished). */
  for (int i = 0; i < s->n_idle; i++)
    conn_close(s->idle[i]);
  pthread_mutex_destroy(&s->pool_mu);
  pthread_cond_destroy(&s->pool_cv);
  pthread_mutex_destroy(&s->cache_mu);
  free(s->data_dir);
  free(s);
}

const char *store_data_dir(const store *s) {
  return s->data_dir;
}
const char *store_default_project(const store *s) {
  return s->default_project;
}

/* ===================================================================
 * Projects
 * =================================================================== */

static int project_query(store *s, const char *sql, const char *arg,
                         store_project *out) {
  sqlite3 *db = conn_get(s);
  if (!db)
    return STORE_ERROR;
  sqlite3_stmt *st = prep(db, sql);
  int rc = STORE_ERROR;
  if (st) {
    bind_text(st, 1, arg);
    int r = sqlite3_step(st);
    if (r == SQLITE_ROW) {
      copy_col(out->id, sizeof out->id, st, 0);
      copy_col(out->name, sizeof out->name, st, 1);
      out->created_at = sqlite3_column_int64(st, 2);
      rc = STORE_OK;
    } else if (r == SQLITE_DONE) {
      rc = STORE_NOT_FOUND;
    } else {
      log_db(db, "project");
    }
    release(st);
  }
  conn_put(s, db);
  return rc;
}

int store_project_by_name(store *s, const char *name, store_project *out) {
  return project_query(
      s, "SELECT id, name, created_at FROM projects WHERE name = ?", name, out);
}

int store_project_by_id(store *s, const char *id, store_project *out) {
  return project_query(
      s, "SELECT id, name, created_at FROM projects WHERE id = ?", id, out);
}

int store_project_create(store *s, const char *name, store_project *out) {
  if (!name || !*name || strlen(name) >= STORE_NAME_MAX)
    return STORE_ERROR;
  store_project p;
  id_new("proj_", p.id, sizeof p.id);
  snprintf(p.name, sizeof p.name, "%s", name);
  p.created_at = (long long)time(NULL);
  sqlite3 *db = conn_get(s);
  if (!db)
    return STORE_ERROR;
  sqlite3_stmt *st =
      prep(db, "INSERT INTO projects (id, name, created_at) VALUES (?, ?, ?)");
  int rc = STORE_ERROR;
  if (st) {
    bind_text(st, 1, p.id);
    bind_text(st, 2, p.name);
    sqlite3_bind_int64(st, 3, p.created_at);
    rc = step_done(db, st);
  }
  conn_put(s, db);
  if (rc == STORE_EXISTS) {
    if (store_project_by_name(s, name, out) != STORE_OK)
      return STORE_ERROR;
    return STORE_EXISTS;
  }
  if (rc == STORE_OK && out)
    *out = p;
  return rc;
}

/* ===================================================================
 * API keys and their cache
 * =================================================================== */

static unsigned slot_of(const char *hash) {
  unsigned v = 0;
  for (int i = 0; i < 4 && hash[i]; i++)
    v = v * 16 +
        (unsigned)(hash[i] <= '9' ? hash[i] - '0' : hash[i] - 'a' + 10);
  return v % KEY_CACHE_SLOTS;
}

static void cache_clear(store *s) {
  pthread_mutex_lock(&s->cache_mu);
  memset(s->keys, 0, sizeof s->keys);
  s->count_expires_ns = 0;
  pthread_mutex_unlock(&s->cache_mu);
}

static int cache_find(store *s, const char *hash, store_key *out) {
  int hit = 0;
  long long now = now_ns();
  pthread_mutex_lock(&s->cache_mu);
  key_slot *k = &s->keys[slot_of(hash)];
  if (k->expires_ns > now && !strcmp(k->key.hash, hash)) {
    *out = k->key;
    hit = 1;
  }
  pthread_mutex_unlock(&s->cache_mu);
  return hit;
}

static void cache_add(store *s, const store_key *key) {
  pthread_mutex_lock(&s->cache_mu);
  key_slot *k = &s->keys[slot_of(key->hash)];
  k->key = *key;
  k->expires_ns = now_ns() + KEY_CACHE_TTL_NS;
  pthread_mutex_unlock(&s->cache_mu);
}

static void key_from_row(sqlite3_stmt *st, store_key *k) {
  copy_col(k->id, sizeof k->id, st, 0);
  copy_col(k->project_id, sizeof k->project_id, st, 1);
  copy_col(k->hash, sizeof k->hash, st, 2);
  copy_col(k->redacted, sizeof k->redacted, st, 3);
  k->admin = sqlite3_column_int(st, 4);
  k->created_at = sqlite3_column_int64(st, 5);
}

#define KEY_COLS "id, project_id, hash, redacted, admin, created_at"

int store_key_insert(store *s, const store_key *k) {
  sqlite3 *db = conn_get(s);
  if (!db)
    return STORE_ERROR;
  sqlite3_stmt *st =
      prep(db, "INSERT INTO api_keys (" KEY_COLS ") VALUES (?, ?, ?, ?, ?, ?)");
  int rc = STORE_ERROR;
  if (st) {
    bind_text(st, 1, k->id);
    bind_text(st, 2, k->project_id);
    bind_text(st, 3, k->hash);
    bind_text(st, 4, k->redacted);
    sqlite3_bind_int(st, 5, k->admin ? 1 : 0);
    sqlite3_bind_int64(st, 6, k->created_at);
    rc = step_done(db, st);
  }
  conn_put(s, db);
  cache_clear(s);
  return rc;
}

int store_key_by_hash(store *s, const char *hash, store_key *out) {
  if (cache_find(s, hash, out))
    return STORE_OK;
  sqlite3 *db = conn_get(s);
  if (!db)
    return STORE_ERROR;
  sqlite3_stmt *st =
      prep(db, "SELECT " KEY_COLS " FROM api_keys WHERE hash = ?");
  int rc = STORE_ERROR;
  if (st) {
    bind_text(st, 1, hash);
    int r = sqlite3_step(st);
    if (r == SQLITE_ROW) {
      key_from_row(st, out);
      rc = STORE_OK;
    } else {
      rc = r == SQLITE_DONE ? STORE_NOT_FOUND : STORE_ERROR;
    }
    release(st);
  }
  conn_put(s, db);
  if (rc == STORE_OK)
    cache_add(s, out);
  return rc;
}

int store_key_count(store *s, long long *out) {
  long long now = now_ns();
  pthread_mutex_lock(&s->cache_mu);
  int hit = s->count_expires_ns > now;
  if (hit)
    *out = s->count_value;
  pthread_mutex_unlock(&s->cache_mu);
  if (hit)
    return STORE_OK;
  sqlite3 *db = conn_get(s);
  if (!db)
    return STORE_ERROR;
  sqlite3_stmt *st = prep(db, "SELECT COUNT(*) FROM api_keys");
  int rc = STORE_ERROR;
  if (st && sqlite3_step(st) == SQLITE_ROW) {
    *out = sqlite3_column_int64(st, 0);
    rc = STORE_OK;
  }
  release(st);
  conn_put(s, db);
  if (rc == STORE_OK) {
    pthread_mutex_lock(&s->cache_mu);
    s->count_value = *out;
    s->count_expires_ns = now + KEY_CACHE_TTL_NS;
    pthread_mutex_unlock(&s->cache_mu);
  }
  return rc;
}

int store_key_each(store *s, int (*fn)(const store_key *k, void *ctx),
                   void *ctx) {
  sqlite3 *db = conn_get(s);
  if (!db)
    return STORE_ERROR;
  sqlite3_stmt *st =
      prep(db, "SELECT " KEY_COLS " FROM api_keys ORDER BY created_at, id");
  int rc = STORE_ERROR;
  if (st) {
    int r;
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
      store_key k;
      key_from_row(st, &k);
      if (fn(&k, ctx))
        break;
    }
    rc = (r == SQLITE_ROW || r == SQLITE_DONE) ? STORE_OK : STORE_ERROR;
    release(st);
  }
  conn_put(s, db);
  return rc;
}

int store_key_delete(store *s, const char *id) {
  sqlite3 *db = conn_get(s);
  if (!db)
    return STORE_ERROR;
  sqlite3_stmt *st = prep(db, "DELETE FROM api_keys WHERE id = ?");
  int rc = STORE_ERROR;
  if (st) {
    bind_text(st, 1, id);
    rc = step_done(db, st);
    if (rc == STORE_OK && sqlite3_changes(db) == 0)
      rc = STORE_NOT_FOUND;
  }
  conn_put(s, db);
  cache_clear(s);
  return rc;
}

/* ===================================================================
 * Generic objects
 * =================================================================== */

void store_obj_clear(store_obj *o) {
  json_decref(o->data);
  json_decref(o->internal);
  memset(o, 0, sizeof *o);
}

/* Rows read before any callback runs (so callbacks may use the store). */
typedef struct row {
  char project[64];
  long long seq;
  store_obj obj;
} row;

typedef struct rows {
  row *v;
  size_t n, cap;
  int data_only; /* leave obj.internal NULL (lists render data alone) */
} rows;

static void rows_free(rows *r) {
  for (size_t i = 0; i < r->n; i++)
    store_obj_clear(&r->v[i].obj);
  free(r->v);
  memset(r, 0, sizeof *r);
}

#define OBJ_COLS                                                               \
  "project_id, seq, id, created_at, filter, expires_at, data, internal"

/* Decodes one row selected with OBJ_COLS. */
static int row_decode(sqlite3_stmt *st, row *r, int data_only) {
  memset(r, 0, sizeof *r);
  copy_col(r->project, sizeof r->project, st, 0);
  r->seq = sqlite3_column_int64(st, 1);
  store_obj *o = &r->obj;
  copy_col(o->id, sizeof o->id, st, 2);
  o->created_at = sqlite3_column_int64(st, 3);
  copy_col(o->filter, sizeof o->filter, st, 4);
  o->expires_at = sqlite3_column_int64(st, 5);
  const char *data = (const char *)sqlite3_column_text(st, 6);
  const char *internal =
      data_only ? NULL : (const char *)sqlite3_column_text(st, 7);
  /* JSON_ALLOW_NUL: stored text may hold U+0000 (a model can emit it) */
  o->data = data ? json_loads(data, JSON_ALLOW_NUL, NULL) : NULL;
  o->internal = internal ? json_loads(internal, JSON_ALLOW_NUL, NULL) : NULL;
  if (!o->data) {
    fprintf(stderr, "store: object %s has unreadable data\n", o->id);
    store_obj_clear(o);
    return STORE_ERROR;
  }
  return STORE_OK;
}

/* Steps st to the end, appending each row to out. Finalizes st. */
static int rows_read(sqlite3 *db, sqlite3_stmt *st, rows *out) {
  int r;
  while ((r = sqlite3_step(st)) == SQLITE_ROW) {
    if (out->n == out->cap) {
      size_t cap = out->cap ? out->cap * 2 : 16;
      row *v = realloc(out->v, cap * sizeof *v);
      if (!v) {
        release(st);
        return STORE_ERROR;
      }
      out->v = v;
      out->cap = cap;
    }
    if (row_decode(st, &out->v[out->n], out->data_only) != STORE_OK) {
      release(st);
      return STORE_ERROR;
    }
    out->n++;
  }
  release(st);
  if (r != SQLITE_DONE) {
    log_db(db, "read rows");
    return STORE_ERROR;
  }
  return STORE_OK;
}

/* Compact JSON text of v (caller frees), or NULL for NULL. */
static char *dump(const json_t *v) {
  return v ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
}

/* Binds (project, kind, id, created_at, filter, expires_at, data, internal)
 * at 1..8. Returns STORE_ERROR if o->data cannot be encoded. */
static int bind_obj(sqlite3_stmt *st, const char *project, const char *kind,
                    const store_obj *o) {
  char *data = dump(o->data), *internal = dump(o->internal);
  if (!data) {
    free(internal);
    return STORE_ERROR;
  }
  bind_text(st, 1, project);
  bind_text(st, 2, kind);
  bind_text(st, 3, o->id);
  sqlite3_bind_int64(st, 4, o->created_at);
  bind_text(st, 5, o->filter);
  sqlite3_bind_int64(st, 6, o->expires_at);
  sqlite3_bind_text(st, 7, data, -1, free);
  if (internal)
    sqlite3_bind_text(st, 8, internal, -1, free);
  else
    sqlite3_bind_null(st, 8);
  return STORE_OK;
}

/* Runs the insert/upsert sql for o on db. */
static int write_on(sqlite3 *db, const char *sql, const char *project,
                    const char *kind, const store_obj *o) {
  sqlite3_stmt *st = prep(db, sql);
  int rc = STORE_ERROR;
  if (st && bind_obj(st, project, kind, o) == STORE_OK) {
    rc = step_done(db, st);
    /* An upsert that hit another project's id changes nothing. */
    if (rc == STORE_OK && sqlite3_changes(db) == 0)
      rc = STORE_EXISTS;
  } else {
    release(st);
  }
  return rc;
}

static int write_obj(store *s, const char *sql, const char *project,
                     const char *kind, const store_obj *o) {
  sqlite3 *db = conn_get(s);
  if (!db)
    return STORE_ERROR;
  int rc = write_on(db, sql, project, kind, o);
  conn_put(s, db);
  return rc;
}

#define INSERT_OBJ                                                             \
  "INSERT INTO objects (project_id, kind, id, created_at, filter, "            \
  "expires_at, data, internal) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"

int store_insert(store *s, const char *project, const char *kind,
                 const store_obj *o) {
  return write_obj(s, INSERT_OBJ, project, kind, o);
}

#define UPSERT_OBJ                                                             \
  INSERT_OBJ " ON CONFLICT (kind, id) DO UPDATE SET "                          \
             "filter = excluded.filter, "                                      \
             "expires_at = excluded.expires_at, "                              \
             "data = excluded.data, "                                          \
             "internal = excluded.internal "                                   \
             "WHERE objects.project_id = excluded.project_id"

int store_put(store *s, const char *project, const char *kind,
              const store_obj *o) {
  return write_obj(s, UPSERT_OBJ, project, kind, o);
}

int store_put_many(store *s, const char *project, size_t n,
                   const char *const *kinds, const store_obj *objs) {
  sqlite3 *db = conn_get(s);
  if (!db)
    return STORE_ERROR;
  int rc = exec(db, "BEGIN IMMEDIATE");
  for (size_t i = 0; rc == STORE_OK && i < n; i++)
    rc = write_on(db, UPSERT_OBJ, project, kinds[i], &objs[i]);
  if (rc == STORE_OK)
    rc = exec(db, "COMMIT");
  if (rc != STORE_OK)
    sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
  conn_put(s, db);
  return rc;
}

/* Reads the object (project, kind, id) on db into *out. */
static int get_on(sqlite3 *db, const char *project, const char *kind,
                  const char *id, store_obj *out) {
  sqlite3_stmt *st = prep(db, "SELECT " OBJ_COLS " FROM objects WHERE "
                              "project_id = ? AND kind = ? AND id = ?");
  if (!st)
    return STORE_ERROR;
  bind_text(st, 1, project);
  bind_text(st, 2, kind);
  bind_text(st, 3, id);
  rows r = {0};
  int rc = rows_read(db, st, &r);
  if (rc == STORE_OK && r.n == 0)
    rc = STORE_NOT_FOUND;
  if (rc == STORE_OK) {
    *out = r.v[0].obj;
    memset(&r.v[0].obj, 0, sizeof r.v[0].obj); /* moved to *out */
  }
  rows_free(&r);
  return rc;
}

int store_get(store *s, const char *project, const char *kind, const char *id,
              store_obj *out) {
  memset(out, 0, sizeof *out);
  sqlite3 *db = conn_get(s);
  if (!db)
    return STORE_ERROR;
  int rc = get_on(db, project, kind, id, out);
  conn_put(s, db);
  return rc;
}

int store_delete(store *s, const char *project, const char *kind,
                 const char *id) {
  sqlite3 *db = conn_get(s);
  if (!db)
    return STORE_ERROR;
  sqlite3_stmt *st = prep(db, "DELETE FROM objects WHERE project_id = ? AND "
                              "kind = ? AND id = ?");
  int rc = STORE_ERROR;
  if (st) {
    bind_text(st, 1, project);
    bind_text(st, 2, kind);
    bind_text(st, 3, id);
    rc = step_done(db, st);
    if (rc == STORE_OK && sqlite3_changes(db) == 0)
      rc = STORE_NOT_FOUND;
  }
  conn_put(s, db);
  return rc;
}

/* Writes o's mutable columns back to (project, kind, id) on db. */
static int rewrite_on(sqlite3 *db, const char *project, const char *kind,
                      const char *id, const store_obj *o) {
  char *data = dump(o->data), *internal = dump(o->internal);
  sqlite3_stmt *st =
      data ? prep(db, "UPDATE objects SET filter = ?, expires_at = ?, "
                      "data = ?, internal = ? WHERE project_id = ? AND "
                      "kind = ? AND id = ?")
           : NULL;
  if (!st) {
    free(data);
    free(internal);
    return STORE_ERROR;
  }
  bind_text(st, 1, o->filter);
  sqlite3_bind_int64(st, 2, o->expires_at);
  sqlite3_bind_text(st, 3, data, -1, free);
  if (internal)
    sqlite3_bind_text(st, 4, internal, -1, free);
  else
    sqlite3_bind_null(st, 4);
  bind_text(st, 5, project);
  bind_text(st, 6, kind);
  bind_text(st, 7, id);
  return step_done(db, st);
}

static int update_on(sqlite3 *db, const char *project, const char *kind,
                     const char *id, store_update_fn fn, void *ctx) {
  store_obj o;
  int rc = get_on(db, project, kind, id, &o);
  if (rc != STORE_OK)
    return rc;
  rc = fn(&o, ctx);
  if (rc == 0)
    rc = o.data ? rewrite_on(db, project, kind, id, &o) : STORE_ERROR;
  store_obj_clear(&o);
  return rc;
}

int store_update(store *s, const char *project, const char *kind,
                 const char *id, store_update_fn fn, void *ctx) {
  sqlite3 *db = conn_get(s);
  if (!db)
    return STORE_ERROR;
  int rc = exec(db, "BEGIN IMMEDIATE");
  if (rc == STORE_OK) {
    rc = update_on(db, project, kind, id, fn, ctx);
    if (rc == STORE_OK)
      rc = exec(db, "COMMIT");
    else
      sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
  }
  conn_put(s, db);
  return rc;
}

/* ---- Pagination over (created_at, seq) ------------------------------- */

typedef struct pos {
  long long created_at, seq;
} pos;

/* Position of cursor object id in list order; STORE_NOT_FOUND if it names
 * no object of this kind in this project. */
static int cursor_pos(sqlite3 *db, const char *project, const char *kind,
                      const char *id, pos *out) {
  sqlite3_stmt *st = prep(db, "SELECT created_at, seq FROM objects WHERE "
                              "project_id = ? AND kind = ? AND id = ?");
  if (!st)
    return STORE_ERROR;
  bind_text(st, 1, project);
  bind_text(st, 2, kind);
  bind_text(st, 3, id);
  int r = sqlite3_step(st), rc;
  if (r == SQLITE_ROW) {
    out->created_at = sqlite3_column_int64(st, 0);
    out->seq = sqlite3_column_int64(st, 1);
    rc = STORE_OK;
  } else {
    rc = r == SQLITE_DONE ? STORE_NOT_FOUND : STORE_ERROR;
  }
  release(st);
  return rc;
}

/* The page query: optional exclusive bounds lo < row < hi in ascending
 * (created_at, seq) order, scanned ascending or descending. */
typedef struct page_query {
  const char *project, *kind, *filter; /* filter NULL = all */
  const pos *lo, *hi;                  /* NULL = unbounded */
  int ascending;
  int limit;
  const char *const *contains; /* data LIKE '%s%' for each, or NULL */
} page_query;

#define CONTAINS_MAX 32

/* s as a LIKE pattern matching any text containing it ('\' escapes). */
static char *like_pattern(const char *s) {
  char *out = malloc(2 * strlen(s) + 3), *o = out;
  if (!out)
    return NULL;
  *o++ = '%';
  for (; *s; s++) {
    if (*s == '%' || *s == '_' || *s == '\\')
      *o++ = '\\';
    *o++ = *s;
  }
  *o++ = '%';
  *o = 0;
  return out;
}

static int page_rows(sqlite3 *db, const page_query *q, rows *out) {
  char sql[768 + CONTAINS_MAX * 32], like[CONTAINS_MAX * 32 + 1] = "";
  const char *dir = q->ascending ? "ASC" : "DESC";
  int nlike = 0;
  while (q->contains && q->contains[nlike]) {
    if (nlike == CONTAINS_MAX)
      return STORE_ERROR;
    strcat(like, " AND data LIKE ? ESCAPE '\\'");
    nlike++;
  }
  snprintf(sql, sizeof sql,
           "SELECT " OBJ_COLS " FROM objects WHERE project_id = ? AND "
           "kind = ?%s%s%s%s ORDER BY created_at %s, seq %s LIMIT ?",
           q->filter ? " AND filter = ?" : "",
           q->lo ? " AND (created_at, seq) > (?, ?)" : "",
           q->hi ? " AND (created_at, seq) < (?, ?)" : "", like, dir, dir);
  sqlite3_stmt *st = prep(db, sql);
  if (!st)
    return STORE_ERROR;
  int i = 1;
  bind_text(st, i++, q->project);
  bind_text(st, i++, q->kind);
  if (q->filter)
    bind_text(st, i++, q->filter);
  const pos *b[2] = {q->lo, q->hi};
  for (int k = 0; k < 2; k++) {
    if (!b[k])
      continue;
    sqlite3_bind_int64(st, i++, b[k]->created_at);
    sqlite3_bind_int64(st, i++, b[k]->seq);
  }
  for (int k = 0; k < nlike; k++) {
    char *pat = like_pattern(q->contains[k]);
    if (!pat) {
      release(st);
      return STORE_ERROR;
    }
    sqlite3_bind_text(st, i++, pat, -1, free);
  }
  sqlite3_bind_int(st, i, q->limit);
  return rows_read(db, st, out);
}

/* Appends *r to out (moving its object). */
static int rows_push(rows *out, row *r) {
  if (out->n == out->cap) {
    size_t cap = out->cap ? out->cap * 2 : 16;
    row *v = realloc(out->v, cap * sizeof *v);
    if (!v)
      return STORE_ERROR;
    out->v = v;
    out->cap = cap;
  }
  out->v[out->n++] = *r;
  memset(&r->obj, 0, sizeof r->obj);
  return STORE_OK;
}

/* Like page_rows, but keeps only the rows match accepts (match NULL: all):
 * reads EACH_BATCH rows at a time in scan order until q->limit rows are
 * kept or the range is exhausted. */
static int page_rows_match(sqlite3 *db, const page_query *q,
                           store_match_fn match, void *ctx, rows *out) {
  if (!match)
    return page_rows(db, q, out); /* q->contains is in the query itself */
  page_query b = *q;
  pos cur;
  b.limit = EACH_BATCH;
  for (;;) {
    rows r = {.data_only = out->data_only};
    int rc = page_rows(db, &b, &r);
    size_t n = r.n;
    if (rc == STORE_OK && n) {
      cur.created_at = r.v[n - 1].obj.created_at;
      cur.seq = r.v[n - 1].seq;
    }
    for (size_t i = 0; rc == STORE_OK && i < n; i++)
      if (out->n < (size_t)q->limit && match(&r.v[i].obj, ctx))
        rc = rows_push(out, &r.v[i]);
    rows_free(&r);
    if (rc != STORE_OK || out->n >= (size_t)q->limit || n < EACH_BATCH)
      return rc;
    /* Invariant: every row up to cur (in scan order) has been seen. */
    if (b.ascending)
      b.lo = &cur;
    else
      b.hi = &cur;
  }
}

/* Fetches the page's rows (in p->order) and whether more exist; only rows
 * m selects count (m NULL: all). */
static int list_rows(sqlite3 *db, const char *project, const char *kind,
                     const char *filter, const page_params *p,
                     const store_match *m, rows *out, int *has_more) {
  pos after, before;
  int rc;
  if (p->after[0] &&
      (rc = cursor_pos(db, project, kind, p->after, &after)) != STORE_OK)
    return rc;
  if (p->before[0] &&
      (rc = cursor_pos(db, project, kind, p->before, &before)) != STORE_OK)
    return rc;
  int asc = p->order == PAGE_ASC;
  const pos *a = p->after[0] ? &after : NULL;
  const pos *b = p->before[0] ? &before : NULL;
  int limit = p->limit > 0 ? p->limit : 20;
  /* With only `before`, walk away from the cursor (against the order) so
   * the page is the `limit` rows nearest it; reversed below. */
  int reversed = b && !a;
  page_query q = {project,
                  kind,
                  filter && *filter ? filter : NULL,
                  asc ? a : b,
                  asc ? b : a,
                  asc != reversed,
                  limit + 1,
                  m ? m->contains : NULL};
  if ((rc = page_rows_match(db, &q, m ? m->fn : NULL, m ? m->ctx : NULL,
                            out)) != STORE_OK)
    return rc;
  *has_more = out->n > (size_t)limit;
  while (out->n > (size_t)limit)
    store_obj_clear(&out->v[--out->n].obj);
  for (size_t i = 0; reversed && i < out->n / 2; i++) {
    row t = out->v[i];
    out->v[i] = out->v[out->n - 1 - i];
    out->v[out->n - 1 - i] = t;
  }
  return STORE_OK;
}

int store_list(store *s, const char *project, const char *kind,
               const char *filter, const page_params *p, json_t **out) {
  return store_list_match(s, project, kind, filter, p, NULL, out);
}

int store_list_match(store *s, const char *project, const char *kind,
                     const char *filter, const page_params *p,
                     const store_match *m, json_t **out) {
  *out = NULL;
  sqlite3 *db = conn_get(s);
  if (!db)
    return STORE_ERROR;
  rows r = {.data_only = 1};
  int has_more = 0;
  int rc = list_rows(db, project, kind, filter, p, m, &r, &has_more);
  conn_put(s, db);
  if (rc == STORE_OK) {
    json_t *data = json_array();
    for (size_t i = 0; i < r.n; i++)
      json_array_append(data, r.v[i].obj.data);
    *out = page_render(data, has_more);
    if (!*out)
      rc = STORE_ERROR;
  }
  rows_free(&r);
  return rc;
}

/* ---- Iteration ------------------------------------------------------- */

/* Calls fn on each row; stops when fn returns nonzero (returned as 1). */
static int rows_visit(rows *r, store_each_fn fn, void *ctx) {
  for (size_t i = 0; i < r->n; i++)
    if (fn(r->v[i].project, &r->v[i].obj, ctx))
      return 1;
  return 0;
}

int store_each(store *s, const char *project, const char *kind,
               const char *filter, store_each_fn fn, void *ctx) {
  pos last = {0, 0};
  int first = 1;
  for (;;) {
    sqlite3 *db = conn_get(s);
    if (!db)
      return STORE_ERROR;
    rows r = {0};
    page_query q = {project,
                    kind,
                    filter && *filter ? filter : NULL,
                    first ? NULL : &last,
                    NULL,
                    1,
                    EACH_BATCH,
                    NULL};
    int rc = page_rows(db, &q, &r);
    conn_put(s, db);
    if (rc != STORE_OK) {
      rows_free(&r);
      return rc;
    }
    size_t n = r.n;
    if (n) {
      last.created_at = r.v[n - 1].obj.created_at;
      last.seq = r.v[n - 1].seq;
    }
    int stop = rows_visit(&r, fn, ctx);
    rows_free(&r);
    if (stop || n < EACH_BATCH)
      return STORE_OK;
    first = 0;
  }
}

int store_each_expired(store *s, const char *kind, long long now, int max,
                       store_each_fn fn, void *ctx) {
  sqlite3 *db = conn_get(s);
  if (!db)
    return STORE_ERROR;
  sqlite3_stmt *st = prep(db, "SELECT " OBJ_COLS " FROM objects WHERE "
                              "kind = ? AND expires_at > 0 AND "
                              "expires_at <= ? ORDER BY expires_at LIMIT ?");
  rows r = {0};
  int rc = STORE_ERROR;
  if (st) {
    bind_text(st, 1, kind);
    sqlite3_bind_int64(st, 2, now);
    sqlite3_bind_int(st, 3, max);
    rc = rows_read(db, st, &r);
  }
  conn_put(s, db);
  if (rc == STORE_OK) {
    rows_visit(&r, fn, ctx);
    rc = (int)r.n;
  }
  rows_free(&r);
  return rc;
}
