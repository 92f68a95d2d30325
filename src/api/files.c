/* Files: POST /v1/files (multipart: file, purpose, expires_after), list,
 * retrieve, delete, and GET /v1/files/{id}/content streamed from disk.
 * A file is a stored object of kind "file" (data = the platform's
 * OpenAIFile JSON, filter = purpose, internal.blob = its bytes) plus a blob.
 * The first section is the files service (also used by api/uploads.c), the
 * second the thin handlers. Knows nothing about HTTP transport. */
#include "api/files.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/ids.h"
#include "core/jsonbody.h"
#include "core/pagination.h"
#include "store/blob.h"
#include "store/store.h"

const char *const files_purposes[] = {
    "assistants", "batch", "fine-tune", "vision", "user_data", "evals", NULL};

#define BATCH_DEFAULT_TTL 2592000 /* batch files expire after 30 days */

/* ------------------------------------------------------ files service */

void files_not_found(api_error *e, const char *id) {
  err_not_found(e, "id", "No such File object: %s", id);
}

int files_expiry_check(long long seconds, const char *param, api_error *e) {
  if (seconds < 3600 || seconds > 2592000) {
    err_invalid(e, param,
                "Invalid '%s': expected a value between 3600 and 2592000 "
                "(seconds), but got %lld instead.",
                param, seconds);
    return -1;
  }
  return 0;
}

int files_create(const api_ctx *ctx, const char *project, const char *filename,
                 const char *purpose, const blob_info *bi,
                 const char *mime_type, long long expires_after, json_t **out,
                 api_error *e) {
  store_obj o = {0};
  long long now = (long long)time(NULL);
  if (!expires_after && !strcmp(purpose, "batch"))
    expires_after = BATCH_DEFAULT_TTL;
  id_new("file-", o.id, sizeof o.id);
  o.created_at = now;
  o.expires_at = expires_after ? now + expires_after : 0;
  snprintf(o.filter, sizeof o.filter, "%s", purpose);
  o.data = json_pack("{s:s, s:s, s:I, s:I, s:s, s:s, s:s}", "id", o.id,
                     "object", "file", "bytes", (json_int_t)bi->size,
                     "created_at", (json_int_t)now, "filename", filename,
                     "purpose", purpose, "status", "processed");
  if (o.data && o.expires_at)
    json_object_set_new(o.data, "expires_at", json_integer(o.expires_at));
  o.internal =
      json_pack("{s:s, s:s, s:s, s:s}", "blob", bi->id, "sha256", bi->sha256,
                "md5", bi->md5, "mime_type", mime_type ? mime_type : "");
  if (!o.data || !o.internal ||
      store_insert(ctx->store, project, "file", &o) != STORE_OK) {
    store_obj_clear(&o);
    err_server(e, "Could not store the file.");
    return -1;
  }
  *out = json_incref(o.data);
  store_obj_clear(&o);
  return 0;
}

/* Loads a live file (an expired one not yet swept counts as absent). */
static int file_get(const api_ctx *ctx, const char *project, const char *id,
                    store_obj *o, api_error *e) {
  int rc = id_valid("file-", id) ? store_get(ctx->store, project, "file", id, o)
                                 : STORE_NOT_FOUND;
  if (rc == STORE_OK && o->expires_at && o->expires_at <= time(NULL)) {
    store_obj_clear(o);
    rc = STORE_NOT_FOUND;
  }
  if (rc == STORE_NOT_FOUND)
    files_not_found(e, id);
  else if (rc != STORE_OK)
    err_server(e, "Could not read the file.");
  return rc == STORE_OK ? 0 : -1;
}

static const char *internal_str(const store_obj *o, const char *key) {
  const char *s = json_string_value(json_object_get(o->internal, key));
  return s ? s : "";
}

/* Content type from the upload's mime_type, else the filename extension. */
static const char *content_type(const char *filename, const char *mime) {
  static const char *const map[][2] = {
      {"txt", "text/plain"},        {"md", "text/markdown"},
      {"json", "application/json"}, {"jsonl", "application/jsonl"},
      {"csv", "text/csv"},          {"html", "text/html"},
      {"pdf", "application/pdf"},   {"png", "image/png"},
      {"jpg", "image/jpeg"},        {"jpeg", "image/jpeg"},
      {"gif", "image/gif"},         {"webp", "image/webp"},
      {"mp3", "audio/mpeg"},        {"wav", "audio/wav"},
      {"py", "text/x-python"},      {"c", "text/x-c"},
      {"xml", "application/xml"},   {"zip", "application/zip"},
  };
  const char *dot = strrchr(filename, '.');
  if (mime && *mime && strcasecmp(mime, "application/octet-stream") != 0)
    return mime;
  for (size_t i = 0; dot && i < sizeof map / sizeof *map; i++)
    if (!strcasecmp(dot + 1, map[i][0]))
      return map[i][1];
  return "application/octet-stream";
}

/* ------------------------------------------------------------ handlers */

/* expires_after[anchor] / expires_after[seconds] of a multipart form:
 * 0 none, 1 with *seconds, -1 on error. */
static int form_expiry(const api_req *req, long long *seconds, api_error *e) {
  const char *anchor = api_form_text(req, "expires_after[anchor]");
  const char *secs = api_form_text(req, "expires_after[seconds]");
  static const char *const anchors[] = {"created_at", NULL};
  if (!anchor && !secs)
    return 0;
  if (!anchor || !secs) {
    err_invalid(e, anchor ? "expires_after[seconds]" : "expires_after[anchor]",
                "Missing required parameter: '%s'.",
                anchor ? "expires_after.seconds" : "expires_after.anchor");
    return -1;
  }
  if (jb_check_enum("expires_after[anchor]", anchor, anchors, e) < 0 ||
      jb_parse_int("expires_after[seconds]", secs, 3600, 2592000, seconds, e) <
          0)
    return -1;
  return 1;
}

void api_files_create(api_req *req, api_resp *resp) {
  api_error *e = &resp->err;
  long long expires = 0;
  if (!req->form) {
    err_invalid(e, NULL,
                "POST /v1/files expects a multipart/form-data body with "
                "'file' and 'purpose' fields.");
    return;
  }
  const char *purpose = api_form_text(req, "purpose");
  api_form_field *file = api_form_get(req, "file");
  if (!purpose) {
    err_invalid(e, "purpose", "Missing required parameter: 'purpose'.");
    return;
  }
  if (jb_check_enum("purpose", purpose, files_purposes, e) < 0)
    return;
  if (!file || !file->is_file || !file->blob) {
    err_invalid(e, "file", "Missing required parameter: 'file'.");
    return;
  }
  if (form_expiry(req, &expires, e) < 0)
    return;
  blob_info bi;
  blob_writer *w = file->blob;
  file->blob = NULL; /* committed or freed below */
  if (blob_commit(w, &bi) < 0) {
    err_server(e, "Could not write the file to disk.");
    return;
  }
  json_t *out;
  api_utf8_scrub(file->filename);
  api_utf8_scrub(file->content_type);
  const char *name = file->filename[0] ? file->filename : "upload";
  if (files_create(req->ctx, req->project, name, purpose, &bi,
                   file->content_type, expires, &out, e) < 0) {
    blob_delete(req->ctx->data_dir, bi.id);
    return;
  }
  api_ok(resp, out);
}

void api_files_list(api_req *req, api_resp *resp) {
  page_spec spec = {10000, 10000, PAGE_DESC};
  page_params p;
  json_t *out = NULL;
  if (page_parse(&p, req->query_fn, req->query_ctx, &spec, &resp->err) < 0)
    return;
  const char *purpose = api_query(req, "purpose");
  int rc = store_list(req->ctx->store, req->project, "file", purpose, &p, &out);
  if (rc == STORE_NOT_FOUND) {
    const char *which = p.after[0] ? "after" : "before";
    err_invalid(&resp->err, which, "Invalid '%s': no file with id '%s'.", which,
                p.after[0] ? p.after : p.before);
    return;
  }
  if (rc != STORE_OK) {
    err_server(&resp->err, "Could not list the files.");
    return;
  }
  api_ok(resp, out);
}

void api_files_retrieve(api_req *req, api_resp *resp) {
  store_obj o = {0};
  if (file_get(req->ctx, req->project, api_param(req, "file_id"), &o,
               &resp->err) < 0)
    return;
  api_ok(resp, json_incref(o.data));
  store_obj_clear(&o);
}

void api_files_delete(api_req *req, api_resp *resp) {
  const char *id = api_param(req, "file_id");
  store_obj o = {0};
  if (file_get(req->ctx, req->project, id, &o, &resp->err) < 0)
    return;
  int rc = store_delete(req->ctx->store, req->project, "file", id);
  if (rc == STORE_OK)
    blob_delete(req->ctx->data_dir, internal_str(&o, "blob"));
  store_obj_clear(&o);
  if (rc == STORE_NOT_FOUND) {
    files_not_found(&resp->err, id);
    return;
  }
  if (rc != STORE_OK) {
    err_server(&resp->err, "Could not delete the file.");
    return;
  }
  api_ok(resp, json_pack("{s:s, s:s, s:b}", "id", id, "object", "file",
                         "deleted", 1));
}

/* filename with anything unsafe in a quoted header value replaced. */
static void safe_name(const char *in, char *out, size_t n) {
  size_t k = 0;
  for (; *in && k + 1 < n; in++)
    out[k++] =
        (*in == '"' || *in == '\\' || iscntrl((unsigned char)*in)) ? '_' : *in;
  out[k] = 0;
}

void api_files_content(api_req *req, api_resp *resp) {
  const char *id = api_param(req, "file_id");
  store_obj o = {0};
  int fd;
  long long size;
  if (file_get(req->ctx, req->project, id, &o, &resp->err) < 0)
    return;
  if (blob_open(req->ctx->data_dir, internal_str(&o, "blob"), &fd, &size) < 0) {
    err_server(&resp->err, "The bytes of file %s are missing on disk.", id);
    store_obj_clear(&o);
    return;
  }
  const char *filename = json_string_value(json_object_get(o.data, "filename"));
  char name[256];
  safe_name(filename ? filename : id, name, sizeof name);
  resp->fd = fd;
  resp->fd_len = size;
  snprintf(resp->content_type, sizeof resp->content_type, "%s",
           content_type(name, internal_str(&o, "mime_type")));
  snprintf(resp->disposition, sizeof resp->disposition,
           "attachment; filename=\"%s\"", name);
  store_obj_clear(&o);
}
