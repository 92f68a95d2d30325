/* Helpers every handler shares: path/query/form lookups and response
 * set-up. Knows nothing about libmicrohttpd (the query is reached through
 * the request's query_fn). */
#include "api/api.h"

#include <stdlib.h>
#include <string.h>
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
    if (x->fd >= 0)
      close(x->fd);
    if (x->path[0])
      unlink(x->path);
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
  if (resp->raw_owned)
    free((void *)resp->raw);
  if (resp->fd >= 0)
    close(resp->fd);
  api_resp_init(resp);
}

void api_ok(api_resp *resp, json_t *body) {
  resp->status = 200;
  if (resp->json)
    json_decref(resp->json);
  resp->json = body;
}
