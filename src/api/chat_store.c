/* Stored chat completions (store: true): list, retrieve, update, delete,
 * messages (being written). */
#include "api/api.h"

static void not_yet(api_resp *resp) {
  api_error_set(&resp->err, 501, "invalid_request_error", "not_implemented",
                NULL, "Stored chat completions are not implemented yet.");
}
void api_chat_list(api_req *req, api_resp *resp) {
  (void)req, not_yet(resp);
}
void api_chat_retrieve(api_req *req, api_resp *resp) {
  (void)req, not_yet(resp);
}
void api_chat_update(api_req *req, api_resp *resp) {
  (void)req, not_yet(resp);
}
void api_chat_delete(api_req *req, api_resp *resp) {
  (void)req, not_yet(resp);
}
void api_chat_messages(api_req *req, api_resp *resp) {
  (void)req, not_yet(resp);
}
int api_chat_store_save(const api_ctx *ctx, const char *project,
                        json_t *completion, json_t *request_messages,
                        json_t *metadata) {
  (void)ctx, (void)project, (void)completion, (void)request_messages,
      (void)metadata;
  return -1;
}
