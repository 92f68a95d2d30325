/* Models: <data>/models/NAME.gguf is model NAME (created = the file's mtime,
 * owned_by "hearth"), plus aliases NAME -> MODEL from <data>/aliases.json
 * and --alias flags, so an application's model name maps to a local model.
 * GET /v1/models is the hot route: its rendered body is cached and shared
 * (reference-counted) until the models directory changes.
 * Knows nothing about HTTP transport. */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "api/api.h"

/* ------------------------------------------------------ the model list */

typedef struct models_buf {
  atomic_int refs;
  size_t len;
  char data[];
} models_buf;

struct api_models_cache {
  pthread_mutex_t mu;
  struct timespec dir_mtime;
  time_t built_at;   /* when cur was rendered */
  time_t checked_at; /* when the directory was last stat'ed */
  models_buf *cur;
};

api_models_cache *api_models_cache_new(void) {
  api_models_cache *c = calloc(1, sizeof *c);
  if (c)
    pthread_mutex_init(&c->mu, NULL);
  return c;
}

static void buf_unref(void *p) {
  models_buf *b = p;
  if (b && atomic_fetch_sub(&b->refs, 1) == 1)
    free(b);
}

void api_models_cache_free(api_models_cache *c) {
  if (!c)
    return;
  buf_unref(c->cur);
  pthread_mutex_destroy(&c->mu);
  free(c);
}

/* A name that can be a file name in models/: no path, not hidden. */
static int name_ok(const char *name) {
  size_t n = strlen(name);
  return n > 0 && n <= 200 && name[0] != '.' && !strchr(name, '/');
}

/* mtime of models/NAME.gguf, or -1 when there is no such model file. */
static long long model_mtime(const api_ctx *ctx, const char *name) {
  char path[1200];
  struct stat sb;
  if (!name_ok(name))
    return -1;
  snprintf(path, sizeof path, "%s/%s.gguf", ctx->models_dir, name);
  if (stat(path, &sb) < 0 || !S_ISREG(sb.st_mode))
    return -1;
  return (long long)sb.st_mtime;
}

static json_t *model_json(const char *id, long long created) {
  return json_pack("{s:s, s:s, s:I, s:s}", "id", id, "object", "model",
                   "created", (json_int_t)created, "owned_by", "hearth");
}

static int by_id(const void *a, const void *b) {
  return strcmp(json_string_value(json_object_get(*(json_t *const *)a, "id")),
                json_string_value(json_object_get(*(json_t *const *)b, "id")));
}

/* Every model file, then every alias whose target exists, sorted by id. */
static json_t *models_render(const api_ctx *ctx) {
  json_t *data = json_array();
  DIR *d = opendir(ctx->models_dir);
  struct dirent *e;
  while (d && (e = readdir(d))) {
    size_t n = strlen(e->d_name);
    if (n <= 5 || strcmp(e->d_name + n - 5, ".gguf") != 0)
      continue;
    char name[256];
    snprintf(name, sizeof name, "%.*s", (int)(n - 5), e->d_name);
    long long mt = model_mtime(ctx, name);
    if (mt >= 0)
      json_array_append_new(data, model_json(name, mt));
  }
  if (d)
    closedir(d);
  for (size_t i = 0; i < ctx->naliases; i++) {
    long long mt = model_mtime(ctx, ctx->aliases[i].model);
    if (mt >= 0 && model_mtime(ctx, ctx->aliases[i].name) < 0)
      json_array_append_new(data, model_json(ctx->aliases[i].name, mt));
  }
  size_t n = json_array_size(data);
  json_t **items = malloc((n ? n : 1) * sizeof *items);
  for (size_t i = 0; items && i < n; i++)
    items[i] = json_incref(json_array_get(data, i));
  if (items) {
    qsort(items, n, sizeof *items, by_id);
    json_array_clear(data);
    for (size_t i = 0; i < n; i++)
      json_array_append_new(data, items[i]);
    free(items);
  }
  return json_pack("{s:s, s:o}", "object", "list", "data", data);
}

static models_buf *buf_from_json(json_t *j) {
  char *s = json_dumps(j, JSON_COMPACT);
  if (!s)
    return NULL;
  size_t n = strlen(s);
  models_buf *b = malloc(sizeof *b + n + 1);
  if (b) {
    atomic_init(&b->refs, 1);
    b->len = n;
    memcpy(b->data, s, n + 1);
  }
  free(s);
  return b;
}

/* The current list body, with a reference for the caller. Within a second
 * of the last check it is served as is; after that the directory's mtime is
 * looked at and the body rebuilt if it moved, or anyway every few seconds
 * (a file replaced in place does not touch the directory). Deletes through
 * the API drop it at once (models_invalidate). */
static models_buf *models_current(const api_ctx *ctx) {
  api_models_cache *c = ctx->models_cache;
  time_t now = time(NULL);
  pthread_mutex_lock(&c->mu);
  if (!c->cur || now != c->checked_at) {
    struct stat sb;
    struct timespec mt = {0, 0};
    if (stat(ctx->models_dir, &sb) == 0)
      mt = sb.st_mtim;
    c->checked_at = now;
    if (!c->cur || now - c->built_at >= 5 || mt.tv_sec != c->dir_mtime.tv_sec ||
        mt.tv_nsec != c->dir_mtime.tv_nsec) {
      json_t *j = models_render(ctx);
      models_buf *b = j ? buf_from_json(j) : NULL;
      json_decref(j);
      if (b) {
        buf_unref(c->cur);
        c->cur = b;
        c->dir_mtime = mt;
        c->built_at = now;
      }
    }
  }
  models_buf *b = c->cur;
  if (b)
    atomic_fetch_add(&b->refs, 1);
  pthread_mutex_unlock(&c->mu);
  return b;
}

static void models_invalidate(const api_ctx *ctx) {
  api_models_cache *c = ctx->models_cache;
  pthread_mutex_lock(&c->mu);
  buf_unref(c->cur);
  c->cur = NULL;
  pthread_mutex_unlock(&c->mu);
}

/* ------------------------------------------------------------ aliases */

static const api_alias *alias_find(const api_ctx *ctx, const char *name) {
  for (size_t i = 0; i < ctx->naliases; i++)
    if (!strcmp(ctx->aliases[i].name, name))
      return &ctx->aliases[i];
  return NULL;
}

int api_alias_add(api_ctx *ctx, const char *name, const char *model) {
  if (!name_ok(name) || !name_ok(model))
    return -1;
  for (size_t i = 0; i < ctx->naliases; i++)
    if (!strcmp(ctx->aliases[i].name, name)) { /* later wins */
      char *m = strdup(model);
      if (!m)
        return -1;
      free(ctx->aliases[i].model);
      ctx->aliases[i].model = m;
      return 0;
    }
  api_alias *a =
      realloc(ctx->aliases, (ctx->naliases + 1) * sizeof *ctx->aliases);
  if (!a)
    return -1;
  ctx->aliases = a;
  a[ctx->naliases].name = strdup(name);
  a[ctx->naliases].model = strdup(model);
  if (!a[ctx->naliases].name || !a[ctx->naliases].model) {
    free(a[ctx->naliases].name);
    free(a[ctx->naliases].model);
    return -1;
  }
  ctx->naliases++;
  return 0;
}

int api_aliases_load(api_ctx *ctx, const char *path, char *err, size_t errlen) {
  json_error_t je;
  if (access(path, F_OK) != 0)
    return 0; /* no file: no aliases */
  json_t *j = json_load_file(path, 0, &je);
  if (!j || !json_is_object(j)) {
    snprintf(err, errlen, "%s: %s", path,
             j ? "expected an object {\"name\": \"model\"}" : je.text);
    json_decref(j);
    return -1;
  }
  const char *k;
  json_t *v;
  json_object_foreach(j, k, v) {
    if (!json_is_string(v) || api_alias_add(ctx, k, json_string_value(v))) {
      snprintf(err, errlen, "%s: alias '%s' must map to a model name", path, k);
      json_decref(j);
      return -1;
    }
  }
  json_decref(j);
  return 0;
}

void api_aliases_free(api_ctx *ctx) {
  for (size_t i = 0; i < ctx->naliases; i++) {
    free(ctx->aliases[i].name);
    free(ctx->aliases[i].model);
  }
  free(ctx->aliases);
  ctx->aliases = NULL;
  ctx->naliases = 0;
}

const char *api_model_resolve(const api_ctx *ctx, const char *name, char *path,
                              size_t pathlen) {
  const char *file = name;
  if (model_mtime(ctx, name) < 0) {
    const api_alias *a = alias_find(ctx, name);
    if (!a || model_mtime(ctx, a->model) < 0)
      return NULL;
    file = a->model;
  }
  snprintf(path, pathlen, "%s/%s.gguf", ctx->models_dir, file);
  return file;
}

/* ----------------------------------------------------------- handlers */

/* The platform's wording, backticks included, and param null. */
static void model_not_found(api_resp *resp, const char *name) {
  api_error_set(&resp->err, 404, "invalid_request_error", "model_not_found",
                NULL,
                "The model `%.200s` does not exist or you do not have access "
                "to it.",
                name);
}

void api_models_list(api_req *req, api_resp *resp) {
  models_buf *b = models_current(req->ctx);
  if (!b) {
    err_server(&resp->err, "Could not list the models directory.");
    return;
  }
  resp->raw = b->data;
  resp->raw_len = b->len;
  resp->raw_free = buf_unref;
  resp->raw_cls = b;
}

void api_models_retrieve(api_req *req, api_resp *resp) {
  const char *name = api_param(req, "model");
  char path[1200];
  const char *file = api_model_resolve(req->ctx, name, path, sizeof path);
  if (!file) {
    model_not_found(resp, name);
    return;
  }
  api_ok(resp, model_json(name, model_mtime(req->ctx, file)));
}

/* Deleting removes models/NAME.gguf: an admin key is needed (in open,
 * no-keys mode every caller is admin). Aliases are configuration and are
 * not deleted through the API. */
void api_models_delete(api_req *req, api_resp *resp) {
  const char *name = api_param(req, "model");
  char path[1200];
  if (model_mtime(req->ctx, name) < 0) {
    if (alias_find(req->ctx, name))
      err_invalid(&resp->err, "model",
                  "'%s' is an alias (configured in aliases.json or with "
                  "--alias); remove it there.",
                  name);
    else
      model_not_found(resp, name);
    return;
  }
  if (!req->admin) {
    api_error_set(&resp->err, 403, "invalid_request_error", "permission_denied",
                  "model",
                  "You have insufficient permissions to delete the model "
                  "'%s': deleting a model needs an admin API key.",
                  name);
    return;
  }
  snprintf(path, sizeof path, "%s/%s.gguf", req->ctx->models_dir, name);
  if (unlink(path) < 0 && errno != ENOENT) {
    err_server(&resp->err, "Could not delete the model '%s': %s", name,
               strerror(errno));
    return;
  }
  models_invalidate(req->ctx);
  api_ok(resp, json_pack("{s:s, s:s, s:b}", "id", name, "object", "model",
                         "deleted", 1));
}
