/* The files service shared by api/files.c and api/uploads.c: creating a
 * File object over a committed blob, and the shared error replies.
 * Knows nothing about HTTP transport. */
#ifndef HEARTH_API_FILES_H
#define HEARTH_API_FILES_H

#include "api/api.h"
#include "store/blob.h"

/* Purposes accepted by POST /v1/files (NULL-terminated). */
extern const char *const files_purposes[];

/* Stores a File object for the committed blob bi in project (expires_after
 * seconds, 0 = the purpose's default). *out = its JSON (new reference).
 * 0, or -1 with e set; the caller still owns (and deletes) the blob then. */
int files_create(const api_ctx *ctx, const char *project, const char *filename,
                 const char *purpose, const blob_info *bi,
                 const char *mime_type, long long expires_after, json_t **out,
                 api_error *e);

/* 404 "No such File object: <id>". */
void files_not_found(api_error *e, const char *id);

/* 3600..2592000 check of an expires_after.seconds value. 0 / -1 with e. */
int files_expiry_check(long long seconds, const char *param, api_error *e);

#endif
