/* API keys and request authentication. A key is "sk-hearth-" + 48 base62
 * characters; only its SHA-256 (hex) is stored, with its project, an admin
 * flag and a redacted display value. auth_resolve turns the Authorization
 * and OpenAI-Project header values of a request into a principal or the
 * platform's 401. Knows nothing about HTTP transport (it receives header
 * values, not requests) nor about SQL. */
#ifndef HEARTH_CORE_AUTH_H
#define HEARTH_CORE_AUTH_H

#include <stddef.h>

#include "core/error.h"
#include "store/store.h"

#define AUTH_KEY_PREFIX "sk-hearth-"
#define AUTH_KEY_MAX 96 /* buffer size for a full secret key */

/* Who is calling. */
typedef struct principal {
  char project_id[64]; /* every object the request touches belongs here */
  char key_id[64];     /* "" in open (no-keys) mode */
  int admin;           /* may use the /organization endpoints */
} principal;

/* Creates a key in the project named project_name (NULL: "default"),
 * creating the project if needed. secret_out (>= AUTH_KEY_MAX bytes) gets
 * the full key, shown once and never stored; rec_out (optional) the stored
 * record. 0, or -1 with e set (500). */
int auth_key_create(store *s, const char *project_name, int admin,
                    char *secret_out, store_key *rec_out, api_error *e);

/* Lowercase hex SHA-256 of key (65 bytes out). */
void auth_hash(const char *key, size_t len, char out[65]);
/* "sk-hearth-ab***xyz" style: first 12 chars, "***", last 3 (short keys:
 * first 2 + "***" + last 2, never more than half of it). */
void auth_redact(const char *key, char *out, size_t outlen);

/* Resolves a request's caller.
 *  authorization: the Authorization header value ("Bearer <key>") or NULL;
 *  project_hdr:   the OpenAI-Project header value or NULL;
 *  allow_open:    the caller (serve) listens on loopback only. When set and
 *                 the store holds no key at all, any bearer token (or none)
 *                 is accepted as the default project (or the project that
 *                 project_hdr names, if it exists) with admin rights: a
 *                 local single-user server has no tenant to protect.
 * Otherwise the key must exist:
 *  - missing header -> 401 "You didn't provide an API key. ..."
 *  - unknown key    -> 401 "Incorrect API key provided: sk-hea***xyz. ..."
 *  both with type invalid_request_error; code null for the missing key
 *  and invalid_api_key for the wrong one, as the platform answers.
 *  - project_hdr naming another project than a non-admin key's -> 401
 *    "OpenAI-Project header should match project for API key";
 *    an admin key may name any existing project with it (404 otherwise).
 * Returns 0 and *out, or -1 with *e set. */
int auth_resolve(store *s, const char *authorization, const char *project_hdr,
                 int allow_open, principal *out, api_error *e);

/* 1 when the store holds at least one key (serve refuses to listen on a
 * non-loopback address when this is 0). -1 on store error. */
int auth_keys_configured(store *s);

#endif
