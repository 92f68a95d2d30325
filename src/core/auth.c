/* API keys and request authentication: key creation (secret shown once,
 * SHA-256 stored, computed with nettle: stateless, unlike OpenSSL 3's
 * EVP/provider machinery that costs ~2 MB resident once touched), the
 * Authorization / OpenAI-Project header rules and the platform's 401s.
 * Knows nothing about HTTP transport or SQL. */
#include "core/auth.h"

#include <ctype.h>
#include <nettle/sha2.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/ids.h"

void auth_hash(const char *key, size_t len, char out[65]) {
  static const char d[] = "0123456789abcdef";
  unsigned char md[SHA256_DIGEST_SIZE];
  const unsigned n = SHA256_DIGEST_SIZE;
  struct sha256_ctx ctx;
  sha256_init(&ctx);
  sha256_update(&ctx, len, (const uint8_t *)key);
  sha256_digest(&ctx, n, md);
  for (unsigned i = 0; i < n; i++) {
    out[2 * i] = d[md[i] >> 4];
    out[2 * i + 1] = d[md[i] & 15];
  }
  out[2 * n] = '\0';
}

void auth_redact(const char *key, char *out, size_t outlen) {
  size_t len = strlen(key);
  size_t head = len / 3 < 12 ? len / 3 : 12;
  size_t tail = len / 6 < 3 ? len / 6 : 3;
  snprintf(out, outlen, "%.*s***%s", (int)head, key, key + len - tail);
}

int auth_key_create(store *s, const char *project_name, int admin,
                    char *secret_out, store_key *rec_out, api_error *e) {
  store_project p;
  const char *name = project_name && *project_name ? project_name : "default";
  int rc = store_project_create(s, name, &p);
  if (rc != STORE_OK && rc != STORE_EXISTS) {
    err_server(e, "Could not create project '%s'.", name);
    return -1;
  }
  char r1[ID_RANDOM_LEN + 1], r2[ID_RANDOM_LEN + 1];
  id_new("", r1, sizeof r1);
  id_new("", r2, sizeof r2);
  snprintf(secret_out, AUTH_KEY_MAX, "%s%s%s", AUTH_KEY_PREFIX, r1, r2);
  store_key k;
  memset(&k, 0, sizeof k);
  id_new("key_", k.id, sizeof k.id);
  snprintf(k.project_id, sizeof k.project_id, "%s", p.id);
  auth_hash(secret_out, strlen(secret_out), k.hash);
  auth_redact(secret_out, k.redacted, sizeof k.redacted);
  k.admin = admin ? 1 : 0;
  k.created_at = (long long)time(NULL);
  if (store_key_insert(s, &k) != STORE_OK) {
    err_server(e, "Could not store the new API key.");
    return -1;
  }
  if (rec_out)
    *rec_out = k;
  return 0;
}

int auth_keys_configured(store *s) {
  long long n;
  if (store_key_count(s, &n) != STORE_OK)
    return -1;
  return n > 0;
}

/* The token of "Bearer <token>" (scheme case-insensitive, spaces trimmed)
 * as start + length; 0 when absent or empty. */
static int bearer_token(const char *h, const char **tok, size_t *len) {
  if (!h)
    return 0;
  while (*h == ' ' || *h == '\t')
    h++;
  if (strncasecmp(h, "Bearer", 6) != 0 || (h[6] != ' ' && h[6] != '\t'))
    return 0;
  h += 6;
  while (*h == ' ' || *h == '\t')
    h++;
  size_t n = strlen(h);
  while (n > 0 && isspace((unsigned char)h[n - 1]))
    n--;
  *tok = h;
  *len = n;
  return n > 0;
}

static void err_no_key(api_error *e) {
  api_error_set(e, 401, "invalid_request_error", NULL, NULL,
                "You didn't provide an API key. You need to provide your API "
                "key in an Authorization header using Bearer auth (i.e. "
                "Authorization: Bearer YOUR_KEY). Create one with `hearth "
                "keys create`.");
}

static void err_bad_key(const char *tok, size_t len, api_error *e) {
  char shown[256], red[64];
  snprintf(shown, sizeof shown, "%.*s", (int)(len < 255 ? len : 255), tok);
  auth_redact(shown, red, sizeof red);
  api_error_set(e, 401, "invalid_request_error", "invalid_api_key", NULL,
                "Incorrect API key provided: %s. You can create an API key "
                "with `hearth keys create`.",
                red);
}

/* Open mode: no keys at all, loopback only. */
static int resolve_open(store *s, const char *project_hdr, principal *out,
                        api_error *e) {
  store_project p;
  memset(out, 0, sizeof *out);
  out->admin = 1;
  if (project_hdr && *project_hdr) {
    if (store_project_by_id(s, project_hdr, &p) != STORE_OK) {
      err_not_found(e, NULL, "Project '%.100s' not found.", project_hdr);
      return -1;
    }
    snprintf(out->project_id, sizeof out->project_id, "%s", p.id);
    return 0;
  }
  snprintf(out->project_id, sizeof out->project_id, "%s",
           store_default_project(s));
  return 0;
}

/* Applies the OpenAI-Project header to a key's principal. */
static int apply_project(store *s, const char *project_hdr, principal *out,
                         api_error *e) {
  if (!project_hdr || !*project_hdr || !strcmp(project_hdr, out->project_id))
    return 0;
  if (!out->admin) {
    api_error_set(e, 401, "invalid_request_error", "mismatched_project", NULL,
                  "OpenAI-Project header should match project for API key");
    return -1;
  }
  store_project p;
  if (store_project_by_id(s, project_hdr, &p) != STORE_OK) {
    err_not_found(e, NULL, "Project '%.100s' not found.", project_hdr);
    return -1;
  }
  snprintf(out->project_id, sizeof out->project_id, "%s", p.id);
  return 0;
}

int auth_resolve(store *s, const char *authorization, const char *project_hdr,
                 int allow_open, principal *out, api_error *e) {
  const char *tok = NULL;
  size_t len = 0;
  int have = bearer_token(authorization, &tok, &len);
  if (allow_open) {
    int configured = auth_keys_configured(s);
    if (configured < 0) {
      err_server(e, "The key store is unavailable.");
      return -1;
    }
    if (!configured)
      return resolve_open(s, project_hdr, out, e);
  }
  if (!have) {
    err_no_key(e);
    return -1;
  }
  char hash[65];
  store_key k;
  auth_hash(tok, len, hash);
  int rc = store_key_by_hash(s, hash, &k);
  if (rc == STORE_NOT_FOUND) {
    err_bad_key(tok, len, e);
    return -1;
  }
  if (rc != STORE_OK) {
    err_server(e, "The key store is unavailable.");
    return -1;
  }
  memset(out, 0, sizeof *out);
  snprintf(out->project_id, sizeof out->project_id, "%s", k.project_id);
  snprintf(out->key_id, sizeof out->key_id, "%s", k.id);
  out->admin = k.admin;
  return apply_project(s, project_hdr, out, e);
}
