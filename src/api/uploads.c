/* Uploads: a large file sent in parts. POST /v1/uploads declares filename,
 * purpose, bytes and mime_type; parts (multipart field `data`, at most
 * 64 MiB each) stream straight into blobs; complete concatenates the parts
 * in the order of part_ids into one new blob (streamed, never in memory),
 * checks the byte count and the optional md5, and creates the File; cancel
 * drops the parts. An upload expires an hour after creation (the sweeper
 * marks it, jobs/sweeper.h; requests treat it as expired right away).
 * Objects: kind "upload" (internal: mime_type, file_expires_after,
 * received) and kind "upload_part" (filter = upload id, internal: blob,
 * bytes). Knows nothing about HTTP transport. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "api/api.h"
#include "api/files.h"
#include "core/ids.h"
#include "core/jsonbody.h"
#include "store/blob.h"
#include "store/store.h"

#define UPLOAD_MAX_BYTES (8LL << 30) /* 8 GiB per upload */
#define PART_MAX_BYTES (64LL << 20)  /* 64 MiB per part */
#define UPLOAD_TTL 3600
#define MAX_PARTS 10000

/* store_update callback results (distinct from STORE_* codes). */
enum { UP_NOT_PENDING = 100, UP_EXPIRED, UP_TOO_MANY_BYTES };

static const char *const upload_purposes[] = {"assistants", "batch",
                                              "fine-tune", "vision", NULL};

/* ----------------------------------------------------- upload service */

static const char *status_of(const store_obj *o) {
  const char *s = json_string_value(json_object_get(o->data, "status"));
  return s ? s : "";
}

static long long int_of(json_t *obj, const char *key) {
  return (long long)json_integer_value(json_object_get(obj, key));
}

/* UP_NOT_PENDING / UP_EXPIRED unless o is a live pending upload. */
static int check_pending(const store_obj *o) {
  if (strcmp(status_of(o), "pending") != 0)
    return UP_NOT_PENDING;
  if (o->expires_at && o->expires_at <= time(NULL))
    return UP_EXPIRED;
  return 0;
}

static void upload_not_found(api_error *e, const char *id) {
  err_not_found(e, "upload_id", "No such Upload object: %s", id);
}

/* Turns a store_update result into the reply's error; 0 when none. */
static int update_error(int rc, const char *id, const char *what,
                        const char *status, api_error *e) {
  switch (rc) {
  case STORE_OK:
    return 0;
  case STORE_NOT_FOUND:
    upload_not_found(e, id);
    break;
  case UP_NOT_PENDING:
    err_invalid(e, NULL,
                "Cannot %s upload %s: its status is '%s', not "
                "'pending'.",
                what, id, status);
    break;
  case UP_EXPIRED:
    err_invalid(e, NULL,
                "Cannot %s upload %s: it expired (uploads must be "
                "completed within an hour of their creation).",
                what, id);
    break;
  case UP_TOO_MANY_BYTES:
    err_invalid(e, "data",
                "Cannot add this part to upload %s: the parts "
                "would exceed the %s bytes the upload declared.",
                id, status);
    break;
  default:
    err_server(e, "Could not update upload %s.", id);
  }
  return -1;
}

/* Deletes every part of an upload (objects and blobs). */
static int drop_part(const char *project, store_obj *o, void *ctx) {
  const api_ctx *c = ctx;
  const char *blob = json_string_value(json_object_get(o->internal, "blob"));
  if (blob)
    blob_delete(c->data_dir, blob);
  store_delete(c->store, project, "upload_part", o->id);
  return 0;
}

static void drop_parts(const api_ctx *ctx, const char *project,
                       const char *upload_id) {
  store_each(ctx->store, project, "upload_part", upload_id, drop_part,
             (void *)ctx);
}

/* ------------------------------------------------------------- create */

static int parse_expires_after(json_t *body, long long *seconds, api_error *e) {
  static const char *const anchors[] = {"created_at", NULL};
  json_t *ea = NULL;
  const char *anchor;
  int rc = jb_object(body, "expires_after", JB_NULLABLE, &ea, e);
  if (rc <= 0)
    return rc;
  if (jb_enum(ea, "anchor", JB_REQUIRED, anchors, &anchor, e) < 0 ||
      jb_int(ea, "seconds", JB_REQUIRED, 3600, 2592000, seconds, e) < 0)
    return -1;
  return 1;
}

void api_uploads_create(api_req *req, api_resp *resp) {
  api_error *e = &resp->err;
  json_t *body = api_json_body(req, e);
  const char *filename, *purpose, *mime;
  long long bytes, file_ttl = 0;
  if (!body)
    return;
  if (jb_string(body, "filename", JB_REQUIRED, 1024, &filename, e) < 0 ||
      jb_enum(body, "purpose", JB_REQUIRED, upload_purposes, &purpose, e) < 0 ||
      jb_int(body, "bytes", JB_REQUIRED, 0, UPLOAD_MAX_BYTES, &bytes, e) < 0 ||
      jb_string(body, "mime_type", JB_REQUIRED, 256, &mime, e) < 0 ||
      parse_expires_after(body, &file_ttl, e) < 0) {
    json_decref(body);
    return;
  }
  store_obj o = {0};
  long long now = (long long)time(NULL);
  id_new("upload_", o.id, sizeof o.id);
  o.created_at = now;
  o.expires_at = now + UPLOAD_TTL;
  o.data = json_pack("{s:s, s:s, s:I, s:I, s:s, s:s, s:s, s:I, s:n}", "id",
                     o.id, "object", "upload", "bytes", (json_int_t)bytes,
                     "created_at", (json_int_t)now, "filename", filename,
                     "purpose", purpose, "status", "pending", "expires_at",
                     (json_int_t)o.expires_at, "file");
  o.internal =
      json_pack("{s:s, s:I, s:I}", "mime_type", mime, "file_expires_after",
                (json_int_t)file_ttl, "received", (json_int_t)0);
  json_decref(body);
  if (!o.data || !o.internal ||
      store_insert(req->ctx->store, req->project, "upload", &o) != STORE_OK)
    err_server(e, "Could not store the upload.");
  else
    api_ok(resp, json_incref(o.data));
  store_obj_clear(&o);
}

/* ------------------------------------------------------------ add part */

typedef struct reserve_ctx {
  long long len;
  char declared[32];
} reserve_ctx;

/* Reserves len bytes of the upload's declared size for a new part. */
static int reserve_fn(store_obj *o, void *p) {
  reserve_ctx *r = p;
  int rc = check_pending(o);
  if (rc)
    return rc;
  long long received = int_of(o->internal, "received");
  long long declared = int_of(o->data, "bytes");
  snprintf(r->declared, sizeof r->declared, "%lld", declared);
  if (received + r->len > declared)
    return UP_TOO_MANY_BYTES;
  json_object_set_new(o->internal, "received", json_integer(received + r->len));
  return 0;
}

static int release_fn(store_obj *o, void *p) {
  reserve_ctx *r = p;
  long long received = int_of(o->internal, "received") - r->len;
  json_object_set_new(o->internal, "received",
                      json_integer(received < 0 ? 0 : received));
  return 0;
}

/* Status text for an error message about an upload that is not pending. */
static void status_text(const api_ctx *ctx, const char *project, const char *id,
                        char *out, size_t n) {
  store_obj o = {0};
  snprintf(out, n, "unknown");
  if (store_get(ctx->store, project, "upload", id, &o) == STORE_OK)
    snprintf(out, n, "%s", status_of(&o));
  store_obj_clear(&o);
}

void api_uploads_add_part(api_req *req, api_resp *resp) {
  const char *id = api_param(req, "upload_id");
  api_error *e = &resp->err;
  api_form_field *data = api_form_get(req, "data");
  reserve_ctx r = {0};
  char status[32];
  if (!id_valid("upload_", id)) {
    upload_not_found(e, id);
    return;
  }
  if (!req->form || !data || !data->is_file || !data->blob) {
    err_invalid(e, "data",
                "Missing required parameter: 'data' (a "
                "multipart/form-data file field with the part's bytes).");
    return;
  }
  if ((long long)data->len > PART_MAX_BYTES) {
    api_error_set(e, 413, "invalid_request_error", "request_too_large", "data",
                  "Upload part too large: %zu bytes exceed the limit of "
                  "%lld bytes (64 MB) per part.",
                  data->len, PART_MAX_BYTES);
    return;
  }
  r.len = (long long)data->len;
  int rc =
      store_update(req->ctx->store, req->project, "upload", id, reserve_fn, &r);
  if (rc == UP_NOT_PENDING)
    status_text(req->ctx, req->project, id, status, sizeof status);
  if (update_error(rc, id, "add a part to",
                   rc == UP_TOO_MANY_BYTES ? r.declared : status, e) < 0)
    return;
  blob_info bi;
  blob_writer *w = data->blob;
  data->blob = NULL;
  store_obj o = {0};
  long long now = (long long)time(NULL);
  id_new("part_", o.id, sizeof o.id);
  o.created_at = now;
  snprintf(o.filter, sizeof o.filter, "%s", id);
  if (blob_commit(w, &bi) < 0) {
    store_update(req->ctx->store, req->project, "upload", id, release_fn, &r);
    err_server(e, "Could not write the part to disk.");
    return;
  }
  o.data =
      json_pack("{s:s, s:s, s:I, s:s}", "id", o.id, "object", "upload.part",
                "created_at", (json_int_t)now, "upload_id", id);
  o.internal =
      json_pack("{s:s, s:I}", "blob", bi.id, "bytes", (json_int_t)bi.size);
  if (!o.data || !o.internal ||
      store_insert(req->ctx->store, req->project, "upload_part", &o) !=
          STORE_OK) {
    blob_delete(req->ctx->data_dir, bi.id);
    store_update(req->ctx->store, req->project, "upload", id, release_fn, &r);
    err_server(e, "Could not store the part.");
  } else {
    api_ok(resp, json_incref(o.data));
  }
  store_obj_clear(&o);
}

/* ------------------------------------------------------------ complete */

typedef struct parts {
  const char **blobs; /* into objs' internal */
  store_obj *objs;
  size_t n;
  long long total;
} parts;

static void parts_free(parts *p) {
  for (size_t i = 0; i < p->n; i++)
    store_obj_clear(&p->objs[i]);
  free(p->objs);
  free(p->blobs);
}

/* Loads the parts named by part_ids, in order; each must belong to the
 * upload and appear once. */
static int load_parts(const api_req *req, const char *upload_id, json_t *ids,
                      parts *p, api_error *e) {
  size_t n = json_array_size(ids);
  p->objs = calloc(n ? n : 1, sizeof *p->objs);
  p->blobs = calloc(n ? n : 1, sizeof *p->blobs);
  if (!p->objs || !p->blobs) {
    err_server(e, "Out of memory.");
    return -1;
  }
  for (size_t i = 0; i < n; i++) {
    const char *pid = json_string_value(json_array_get(ids, i));
    for (size_t j = 0; j < i; j++)
      if (!strcmp(p->objs[j].id, pid)) {
        err_invalid(e, "part_ids", "Part '%s' is listed twice in part_ids.",
                    pid);
        return -1;
      }
    store_obj *o = &p->objs[p->n];
    int rc = id_valid("part_", pid) ? store_get(req->ctx->store, req->project,
                                                "upload_part", pid, o)
                                    : STORE_NOT_FOUND;
    if (rc == STORE_OK)
      p->n++;
    if (rc != STORE_OK || strcmp(o->filter, upload_id) != 0) {
      if (rc == STORE_ERROR)
        err_server(e, "Could not read part %s.", pid);
      else
        err_invalid(e, "part_ids", "Part '%s' is not a part of upload %s.", pid,
                    upload_id);
      return -1;
    }
    p->blobs[i] = json_string_value(json_object_get(o->internal, "blob"));
    p->total += int_of(o->internal, "bytes");
    if (!p->blobs[i]) {
      err_server(e, "Part %s has no stored bytes.", pid);
      return -1;
    }
  }
  return 0;
}

static int parse_complete(const api_req *req, json_t **body, json_t **ids,
                          const char **md5, api_error *e) {
  if (!(*body = api_json_body(req, e)))
    return -1;
  *md5 = NULL;
  if (jb_array(*body, "part_ids", JB_REQUIRED, ids, e) < 0 ||
      jb_string(*body, "md5", JB_NULLABLE, 64, md5, e) < 0)
    return -1;
  if (json_array_size(*ids) > MAX_PARTS) {
    err_invalid(e, "part_ids", "Too many parts (at most %d).", MAX_PARTS);
    return -1;
  }
  for (size_t i = 0; i < json_array_size(*ids); i++)
    if (!json_is_string(json_array_get(*ids, i))) {
      err_invalid(e, "part_ids",
                  "Invalid type for 'part_ids[%zu]': expected a string, but "
                  "got %s instead.",
                  i, jb_type_words(json_array_get(*ids, i)));
      return -1;
    }
  return 0;
}

typedef struct finish_ctx {
  json_t *file; /* the new File's JSON (set as data.file) */
  json_t *out;  /* the updated upload (new reference) */
  const char *status;
} finish_ctx;

/* pending -> completed (with file) or cancelled. */
static int finish_fn(store_obj *o, void *p) {
  finish_ctx *f = p;
  int rc = check_pending(o);
  if (rc)
    return rc;
  json_object_set_new(o->data, "status", json_string(f->status));
  if (f->file)
    json_object_set(o->data, "file", f->file);
  o->expires_at = 0; /* finished: nothing left for the sweeper */
  f->out = json_incref(o->data);
  return 0;
}

/* Checks the upload is pending and returns its declared bytes & fields. */
static int load_upload(const api_req *req, const char *id, store_obj *u,
                       api_error *e) {
  int rc = id_valid("upload_", id)
               ? store_get(req->ctx->store, req->project, "upload", id, u)
               : STORE_NOT_FOUND;
  if (rc == STORE_OK)
    rc = check_pending(u);
  return update_error(rc, id, "complete", status_of(u), e);
}

/* Concatenates, verifies and creates the File. */
static json_t *assemble(const api_req *req, const store_obj *u, const parts *p,
                        const char *md5, blob_info *bi, api_error *e) {
  char msg[256];
  json_t *file = NULL;
  long long declared = int_of(u->data, "bytes");
  if (p->total != declared) {
    err_invalid(e, "part_ids",
                "The parts add up to %lld bytes, but upload %s declared %lld "
                "bytes.",
                p->total, u->id, declared);
    return NULL;
  }
  if (blob_concat(req->ctx->data_dir, p->blobs, p->n, bi, msg, sizeof msg) <
      0) {
    err_server(e, "Could not assemble the upload: %s", msg);
    return NULL;
  }
  if (md5 && strcasecmp(md5, bi->md5) != 0) {
    err_invalid(e, "md5",
                "The md5 checksum of the uploaded bytes (%s) does not match "
                "the md5 given (%s).",
                bi->md5, md5);
  } else if (files_create(
                 req->ctx, req->project,
                 json_string_value(json_object_get(u->data, "filename")),
                 json_string_value(json_object_get(u->data, "purpose")), bi,
                 json_string_value(json_object_get(u->internal, "mime_type")),
                 int_of(u->internal, "file_expires_after"), &file, e) == 0) {
    return file;
  }
  blob_delete(req->ctx->data_dir, bi->id);
  return NULL;
}

void api_uploads_complete(api_req *req, api_resp *resp) {
  const char *id = api_param(req, "upload_id");
  api_error *e = &resp->err;
  json_t *body = NULL, *ids = NULL, *file = NULL;
  const char *md5;
  store_obj u = {0};
  parts p = {0};
  blob_info bi;
  if (load_upload(req, id, &u, e) < 0 ||
      parse_complete(req, &body, &ids, &md5, e) < 0 ||
      load_parts(req, id, ids, &p, e) < 0 ||
      !(file = assemble(req, &u, &p, md5, &bi, e)))
    goto out;
  finish_ctx f = {file, NULL, "completed"};
  int rc =
      store_update(req->ctx->store, req->project, "upload", id, finish_fn, &f);
  if (rc != STORE_OK) {
    store_delete(req->ctx->store, req->project, "file",
                 json_string_value(json_object_get(file, "id")));
    blob_delete(req->ctx->data_dir, bi.id);
    update_error(rc, id, "complete", "not pending", e);
    goto out;
  }
  drop_parts(req->ctx, req->project, id);
  api_ok(resp, f.out);
out:
  json_decref(file);
  json_decref(body);
  parts_free(&p);
  store_obj_clear(&u);
}

/* -------------------------------------------------------------- cancel */

void api_uploads_cancel(api_req *req, api_resp *resp) {
  const char *id = api_param(req, "upload_id");
  finish_ctx f = {NULL, NULL, "cancelled"};
  char status[32] = "unknown";
  int rc = id_valid("upload_", id) ? store_update(req->ctx->store, req->project,
                                                  "upload", id, finish_fn, &f)
                                   : STORE_NOT_FOUND;
  if (rc == UP_NOT_PENDING)
    status_text(req->ctx, req->project, id, status, sizeof status);
  if (update_error(rc, id, "cancel", status, &resp->err) < 0)
    return;
  drop_parts(req->ctx, req->project, id);
  api_ok(resp, f.out);
}
