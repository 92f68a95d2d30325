#!/bin/sh
# Generates src/http/routes.c from ../shared/openapi/operations.tsv: one entry
# per operation. Run once to bootstrap; the committed routes.c is then the
# table that people edit (add a handler name where an operation gets one).
# usage: src/http/gen_routes.sh ../shared/openapi/operations.tsv > src/http/routes.c
set -e
TSV=${1:-../shared/openapi/operations.tsv}
cat <<'HDR'
/* THE route table: every operation of the platform API (operations.tsv, paths
 * without /v1; served under /v1). Reading it tells what the server does: an
 * entry with a handler is implemented, NULL answers 501 not_implemented.
 * Admin scope (paths under /organization and /projects) needs an admin key.
 * To implement an operation: write `void api_x(api_req *, api_resp *)` in
 * src/api/<family>.c, declare it in api/api.h, put its name in the row.
 * Rows marked F receive multipart bodies as req->form (file fields already
 * streamed to blobs); the others get the raw body (api_json_body parses it).
 * Bootstrapped by src/http/gen_routes.sh; edit by hand since. */
#include "api/api.h"
#include "http/router.h"

#define NI NULL /* not implemented yet */
#define U SCOPE_USER
#define A SCOPE_ADMIN
#define F ROUTE_FORM /* takes multipart/form-data (file uploads) */

const route routes[] = {
HDR
awk -F'\t' '
function handler(op) {
  if (op in impl) return impl[op]
  return "NI"
}
BEGIN {
  impl["listModels"] = "api_models_list"
  impl["retrieveModel"] = "api_models_retrieve"
  impl["deleteModel"] = "api_models_delete"
  impl["listFiles"] = "api_files_list"
  impl["createFile"] = "api_files_create"
  impl["retrieveFile"] = "api_files_retrieve"
  impl["deleteFile"] = "api_files_delete"
  impl["downloadFile"] = "api_files_content"
  impl["createUpload"] = "api_uploads_create"
  impl["addUploadPart"] = "api_uploads_add_part"
  impl["completeUpload"] = "api_uploads_complete"
  impl["cancelUpload"] = "api_uploads_cancel"
  # Operations whose request body may be multipart/form-data in openapi.yaml.
  n = split("createTranscription createTranslation createVoiceConsent " \
            "createVoice CreateContainerFile createFile createImageEdit " \
            "createImageVariation create-realtime-call addUploadPart " \
            "Createcontentprovenancecheck createVideo CreateVideoCharacter " \
            "CreateVideoEdit CreateVideoExtend CreateVideoRemix CreateSkill " \
            "CreateSkillVersion", mp, " ")
  for (i = 1; i <= n; i++) multipart[mp[i]] = 1
}
{
  scope = ($2 ~ /^\/(organization|projects)\//) ? "A" : "U"
  form = ($3 in multipart) ? ", F" : ", 0"
  printf "    {M_%s, \"%s\", \"%s\", %s, %s%s},\n", $1, $2, $3, handler($3), scope, form
}' "$TSV"
cat <<'FTR'
};

const size_t routes_count = sizeof routes / sizeof routes[0];
FTR
