/* Helpers every handler shares: path/query/form lookups and response
 * set-up. Knows nothing about libmicrohttpd (the query is reached through
 * the request's query_fn). */
#include "api/api.h"

#include "api/stream.h"
#include "core/jsonbody.h"
#include "store/blob.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

const char *api_param(const api_req *r, const char *name) {
  size_t len = strlen(name);
  const api_params *p = r->params;
  for (int k = 0; p && k < p->n; k++)
    if (p->name_len[k] == len && !memcmp(p->name[k], name, len))
      return p->value[k];
  return NULL;
}

const char *api_query(const api_req *r, const char *key) {
  return r->query_fn ? r->query_fn(r->query_ctx, key) : NULL;
}

int api_query_each(const api_req *r, api_query_visit fn, void *cls) {
  return r->query_each_fn ? r->query_each_fn(r->query_ctx, fn, cls) : 0;
}

api_form_field *api_form_get(const api_req *r, const char *name) {
  if (!r->form)
    return NULL;
  for (int i = 0; i < r->form->n; i++)
    if (!strcmp(r->form->fields[i].name, name))
      return &r->form->fields[i];
  return NULL;
}

void api_form_free(api_form *f) {
  for (int i = 0; i < f->n; i++) {
    api_form_field *x = &f->fields[i];
    free(x->value);
    blob_abort(x->blob);
  }
  free(f->fields);
  memset(f, 0, sizeof *f);
}

void api_resp_init(api_resp *resp) {
  memset(resp, 0, sizeof *resp);
  resp->status = 200;
  resp->fd = -1;
}

void api_resp_clear(api_resp *resp) {
  if (resp->json)
    json_decref(resp->json);
  if (resp->raw_free)
    resp->raw_free(resp->raw_cls);
  if (resp->fd >= 0)
    close(resp->fd);
  if (resp->stream)
    api_stream_release(resp->stream);
  api_resp_init(resp);
}

void api_ok(api_resp *resp, json_t *body) {
  resp->status = 200;
  if (resp->json)
    json_decref(resp->json);
  resp->json = body;
}

json_t *api_json_body(const api_req *r, api_error *e) {
  const char *ct = r->content_type;
  if (r->form || (ct && strncasecmp(ct, "application/json", 16) != 0)) {
    err_invalid(e, NULL,
                "Invalid Content-Type header (%s): %s %s expects a JSON body "
                "(application/json).",
                ct ? ct : "none", r->method, r->url);
    return NULL;
  }
  return jsonbody_parse(r->body ? r->body : "", r->body_len, e);
}

const char *api_form_text(const api_req *r, const char *name) {
  api_form_field *f = api_form_get(r, name);
  return f && !f->is_file ? f->value : NULL;
}

api_stream *api_resp_stream(api_resp *resp, const char *content_type) {
  api_stream *s = api_stream_new();
  if (!s) {
    err_server(&resp->err, "Out of memory starting a streamed response.");
    return NULL;
  }
  if (resp->stream)
    api_stream_release(resp->stream);
  resp->stream = s;
  snprintf(resp->content_type, sizeof resp->content_type, "%s",
           content_type ? content_type : "text/event-stream");
  return s;
}

/* Length of the valid UTF-8 sequence at s (1..4), or 0 when invalid
 * (overlong forms, surrogates and code points past U+10FFFF included). */
static int utf8_seq(const unsigned char *s) {
  unsigned c = s[0];
  int n = c < 0x80                 ? 1
          : c >= 0xC2 && c <= 0xDF ? 2
          : (c & 0xF0) == 0xE0     ? 3
          : c >= 0xF0 && c <= 0xF4 ? 4
                                   : 0;
  for (int i = 1; i < n; i++)
    if ((s[i] & 0xC0) != 0x80)
      return 0;
  if ((n == 3 && c == 0xE0 && s[1] < 0xA0) ||
      (n == 3 && c == 0xED && s[1] >= 0xA0) ||
      (n == 4 && c == 0xF0 && s[1] < 0x90) ||
      (n == 4 && c == 0xF4 && s[1] >= 0x90))
    return 0;
  return n;
}

/* Replaces bytes that are not valid UTF-8 with '?', in place: messages
 * quote client input, and JSON strings must be valid UTF-8. */
void api_utf8_scrub(char *p) {
  unsigned char *s = (unsigned char *)p;
  while (*s) {
    int n = utf8_seq(s);
    if (n == 0)
      *s++ = '?';
    else
      s += n;
  }
}
