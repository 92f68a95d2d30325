/* Completions (legacy): POST /v1/completions (being written). */
#include "api/api.h"

void api_completions_create(api_req *req, api_resp *resp) {
  (void)req;
  api_error_set(&resp->err, 501, "invalid_request_error", "not_implemented",
                NULL, "POST /v1/completions is not implemented yet.");
}
