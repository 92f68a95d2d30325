/* Unit tests for core/auth.c: key format and hashing, redaction, resolve
 * with valid / missing / wrong keys, open loopback mode, the OpenAI-Project
 * header, key revocation. */
#include <ftw.h>
#include <pthread.h>
#include <unistd.h>

#include "core/auth.h"
#include "t.h"

/* Local arrays through a function: CHECK_STR tests its args for NULL. */
static const char *S(const char *x) {
  return x;
}

static int rm_cb(const char *p, const struct stat *sb, int f, struct FTW *w) {
  (void)sb, (void)f, (void)w;
  return remove(p);
}

static store *open_tmp(char *dir) {
  store *s = NULL;
  char err[256];
  strcpy(dir, "/tmp/hearth-test-auth-XXXXXX");
  if (!mkdtemp(dir) || store_open(dir, &s, err, sizeof err) != STORE_OK)
    return NULL;
  return s;
}

static void test_hash_and_redact(void) {
  char h[65], r[64];
  auth_hash("abc", 3, h);
  CHECK_STR(S(h),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  auth_redact("sk-hearth-abcdefghijklmnopqrstuvwxyz0123456789", r, sizeof r);
  CHECK_STR(S(r), "sk-hearth-ab***789");
  auth_redact("wrong", r, sizeof r);
  CHECK_STR(S(r), "w***");
  auth_redact("", r, sizeof r);
  CHECK_STR(S(r), "***");
}

static void test_create_and_resolve(void) {
  char dir[64], key[AUTH_KEY_MAX], hdr[200];
  store *s = open_tmp(dir);
  if (!s) {
    CHECK(0);
    return;
  }
  store_key rec;
  api_error e;
  principal p;
  CHECK_INT(auth_keys_configured(s), 0);
  CHECK_INT(auth_key_create(s, "acme", 0, key, &rec, &e), 0);
  CHECK(strncmp(key, AUTH_KEY_PREFIX, strlen(AUTH_KEY_PREFIX)) == 0);
  CHECK_INT(strlen(key), strlen(AUTH_KEY_PREFIX) + 48);
  CHECK(strstr(rec.redacted, "***") != NULL);
  char h[65];
  auth_hash(key, strlen(key), h);
  CHECK_STR(rec.hash, S(h));
  CHECK(strstr(rec.hash, key) == NULL);
  CHECK_INT(auth_keys_configured(s), 1);
  snprintf(hdr, sizeof hdr, "Bearer %s", key);
  CHECK_INT(auth_resolve(s, hdr, NULL, 0, &p, &e), 0);
  CHECK_STR(p.project_id, rec.project_id);
  CHECK_STR(p.key_id, rec.id);
  CHECK_INT(p.admin, 0);
  store_project pr;
  CHECK_INT(store_project_by_name(s, "acme", &pr), STORE_OK);
  CHECK_STR(pr.id, p.project_id);
  /* scheme is case-insensitive, spaces tolerated */
  snprintf(hdr, sizeof hdr, "bearer   %s  ", key);
  CHECK_INT(auth_resolve(s, hdr, NULL, 1, &p, &e), 0);
  /* keys exist now: loopback no longer opens the door */
  CHECK_INT(auth_resolve(s, NULL, NULL, 1, &p, &e), -1);
  CHECK_INT(e.status, 401);
  CHECK(strncmp(e.message, "You didn't provide an API key.", 30) == 0);
  CHECK(e.code == NULL); /* the platform sends code null here */
  CHECK_STR(e.type, "invalid_request_error");
  CHECK_INT(auth_resolve(s, "Basic abc", NULL, 0, &p, &e), -1);
  CHECK_INT(e.status, 401);
  CHECK_INT(auth_resolve(s, "Bearer ", NULL, 0, &p, &e), -1);
  CHECK(strncmp(e.message, "You didn't provide", 18) == 0);
  CHECK_INT(auth_resolve(s, "Bearer sk-hearth-wrongwrongwrongwrongwrongxyz",
                         NULL, 0, &p, &e),
            -1);
  CHECK_INT(e.status, 401);
  CHECK(strncmp(e.message, "Incorrect API key provided: sk-hearth-wr***xyz.",
                47) == 0);
  CHECK(strstr(e.message, "wrongwrong") == NULL);
  CHECK_STR(e.code, "invalid_api_key");
  /* revocation takes effect at once in this process */
  CHECK_INT(store_key_delete(s, rec.id), STORE_OK);
  snprintf(hdr, sizeof hdr, "Bearer %s", key);
  CHECK_INT(auth_resolve(s, hdr, NULL, 0, &p, &e), -1);
  store_close(s);
  nftw(dir, rm_cb, 8, FTW_DEPTH | FTW_PHYS);
}

static void test_open_mode(void) {
  char dir[64];
  store *s = open_tmp(dir);
  if (!s) {
    CHECK(0);
    return;
  }
  api_error e;
  principal p;
  CHECK_INT(auth_resolve(s, "Bearer anything", NULL, 1, &p, &e), 0);
  CHECK_STR(p.project_id, store_default_project(s));
  CHECK_INT(auth_resolve(s, NULL, NULL, 1, &p, &e), 0);
  CHECK_STR(p.key_id, "");
  /* not loopback: a key is required even when none exist */
  CHECK_INT(auth_resolve(s, "Bearer anything", NULL, 0, &p, &e), -1);
  CHECK_INT(e.status, 401);
  store_project other;
  store_project_create(s, "other", &other);
  CHECK_INT(auth_resolve(s, NULL, other.id, 1, &p, &e), 0);
  CHECK_STR(p.project_id, other.id);
  CHECK_INT(auth_resolve(s, NULL, "proj_nope", 1, &p, &e), -1);
  CHECK_INT(e.status, 404);
  store_close(s);
  nftw(dir, rm_cb, 8, FTW_DEPTH | FTW_PHYS);
}

static void test_project_header(void) {
  char dir[64], k1[AUTH_KEY_MAX], ka[AUTH_KEY_MAX], hdr[200];
  store *s = open_tmp(dir);
  if (!s) {
    CHECK(0);
    return;
  }
  store_key r1, ra;
  api_error e;
  principal p;
  auth_key_create(s, "one", 0, k1, &r1, &e);
  auth_key_create(s, NULL, 1, ka, &ra, &e);
  CHECK_STR(ra.project_id, store_default_project(s));
  snprintf(hdr, sizeof hdr, "Bearer %s", k1);
  CHECK_INT(auth_resolve(s, hdr, r1.project_id, 0, &p, &e), 0);
  CHECK_INT(auth_resolve(s, hdr, ra.project_id, 0, &p, &e), -1);
  CHECK_INT(e.status, 401);
  CHECK(strstr(e.message, "OpenAI-Project header should match") != NULL);
  /* an admin key may act in any existing project */
  snprintf(hdr, sizeof hdr, "Bearer %s", ka);
  CHECK_INT(auth_resolve(s, hdr, r1.project_id, 0, &p, &e), 0);
  CHECK_STR(p.project_id, r1.project_id);
  CHECK_INT(p.admin, 1);
  CHECK_INT(auth_resolve(s, hdr, "proj_nope", 0, &p, &e), -1);
  CHECK_INT(e.status, 404);
  store_close(s);
  nftw(dir, rm_cb, 8, FTW_DEPTH | FTW_PHYS);
}

typedef struct racer {
  store *s;
  const char *hdr;
  int ok, bad;
} racer;

static void *race(void *arg) {
  racer *r = arg;
  for (int i = 0; i < 2000; i++) {
    principal p;
    api_error e;
    if (auth_resolve(r->s, r->hdr, NULL, 0, &p, &e) == 0)
      r->ok++;
    else
      r->bad++;
  }
  return NULL;
}

/* Resolving from many threads while keys change: valid keys always pass,
 * the cache never hands out a wrong answer. */
static void test_concurrent_resolve(void) {
  char dir[64], keys[4][AUTH_KEY_MAX], hdrs[5][512];
  store *s = open_tmp(dir);
  if (!s) {
    CHECK(0);
    return;
  }
  api_error e;
  for (int i = 0; i < 4; i++) {
    auth_key_create(s, i % 2 ? "odd" : "even", 0, keys[i], NULL, &e);
    snprintf(hdrs[i], sizeof hdrs[i], "Bearer %s", keys[i]);
  }
  snprintf(hdrs[4], sizeof hdrs[4], "Bearer %s", "sk-hearth-not-a-key");
  pthread_t th[5];
  racer r[5];
  for (int i = 0; i < 5; i++) {
    r[i] = (racer){s, hdrs[i], 0, 0};
    pthread_create(&th[i], NULL, race, &r[i]);
  }
  char extra[AUTH_KEY_MAX];
  for (int i = 0; i < 20; i++) /* invalidates the cache under the racers */
    auth_key_create(s, "churn", 0, extra, NULL, &e);
  for (int i = 0; i < 5; i++)
    pthread_join(th[i], NULL);
  for (int i = 0; i < 4; i++) {
    CHECK_INT(r[i].ok, 2000);
    CHECK_INT(r[i].bad, 0);
  }
  CHECK_INT(r[4].ok, 0);
  store_close(s);
  nftw(dir, rm_cb, 8, FTW_DEPTH | FTW_PHYS);
}

int main(void) {
  RUN(test_hash_and_redact);
  RUN(test_create_and_resolve);
  RUN(test_open_mode);
  RUN(test_project_header);
  RUN(test_concurrent_resolve);
  T_MAIN_END();
}
