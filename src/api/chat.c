/* Chat Completions: POST /v1/chat/completions (being written). */
#include "api/api.h"

void api_chat_create(api_req *req, api_resp *resp) {
  (void)req;
  api_error_set(&resp->err, 501, "invalid_request_error", "not_implemented",
                NULL, "POST /v1/chat/completions is not implemented yet.");
}
