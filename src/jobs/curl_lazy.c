/* libcurl opened on first use: defines the few libcurl entry points hearth
 * calls (jobs/pull.c) and forwards each to the real one found with dlopen /
 * dlsym. The linker resolves those calls here (libserver.a comes before
 * -lcurl), so with --as-needed the binary does not link libcurl, and every
 * `hearth serve` no longer maps libcurl, OpenSSL, Kerberos, LDAP and the
 * rest of its dependencies (~3.2 MB resident) for a command it never runs.
 * A libcurl function used without a forwarder here is linked directly again
 * (bench/http/rss.sh lists the heavy libraries still mapped). Without
 * libcurl, curl_easy_init answers NULL and the others fail cleanly.
 * Knows nothing about downloads, models or HTTP serving. */
#define CURL_DISABLE_TYPECHECK /* plain prototypes, not the checking macros */
#include <curl/curl.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>

#define CURL_LAZY_LIB "libcurl.so.4" /* libcurl's ABI name since 7.16 */

typedef struct {
  CURL *(*easy_init)(void);
  void (*easy_cleanup)(CURL *);
  CURLcode (*easy_perform)(CURL *);
  CURLcode (*easy_setopt)(CURL *, CURLoption, ...);
  CURLcode (*easy_getinfo)(CURL *, CURLINFO, ...);
  const char *(*easy_strerror)(CURLcode);
  struct curl_slist *(*slist_append)(struct curl_slist *, const char *);
  void (*slist_free_all)(struct curl_slist *);
  int ok; /* every entry point found */
} curl_api;

/* Filled once by curl_open (pthread_once), read-only afterwards. */
static curl_api api;
static pthread_once_t api_once = PTHREAD_ONCE_INIT;

static void curl_open(void) {
  void *lib = dlopen(CURL_LAZY_LIB, RTLD_NOW | RTLD_LOCAL);
  if (!lib)
    return;
  api.easy_init = (CURL * (*)(void)) dlsym(lib, "curl_easy_init");
  api.easy_cleanup = (void (*)(CURL *))dlsym(lib, "curl_easy_cleanup");
  api.easy_perform = (CURLcode(*)(CURL *))dlsym(lib, "curl_easy_perform");
  api.easy_setopt =
      (CURLcode(*)(CURL *, CURLoption, ...))dlsym(lib, "curl_easy_setopt");
  api.easy_getinfo =
      (CURLcode(*)(CURL *, CURLINFO, ...))dlsym(lib, "curl_easy_getinfo");
  api.easy_strerror =
      (const char *(*)(CURLcode))dlsym(lib, "curl_easy_strerror");
  api.slist_append =
      (struct curl_slist * (*)(struct curl_slist *, const char *))
          dlsym(lib, "curl_slist_append");
  api.slist_free_all =
      (void (*)(struct curl_slist *))dlsym(lib, "curl_slist_free_all");
  api.ok = api.easy_init && api.easy_cleanup && api.easy_perform &&
           api.easy_setopt && api.easy_getinfo && api.easy_strerror &&
           api.slist_append && api.slist_free_all;
  /* the library stays open: handles may outlive any caller */
}

/* The loaded API, or NULL when libcurl cannot be opened. */
static const curl_api *curl(void) {
  pthread_once(&api_once, curl_open);
  return api.ok ? &api : NULL;
}

CURL *curl_easy_init(void) {
  const curl_api *a = curl();
  return a ? a->easy_init() : NULL;
}

/* Handles exist only when libcurl loaded, so the rest can assume it. */
void curl_easy_cleanup(CURL *h) {
  if (h)
    curl()->easy_cleanup(h);
}

CURLcode curl_easy_perform(CURL *h) {
  return h ? curl()->easy_perform(h) : CURLE_BAD_FUNCTION_ARGUMENT;
}

/* The option number says the argument's type, as libcurl itself reads it:
 * long, object pointer, function pointer, curl_off_t, or a blob pointer. */
CURLcode curl_easy_setopt(CURL *h, CURLoption opt, ...) {
  if (!h)
    return CURLE_BAD_FUNCTION_ARGUMENT;
  const curl_api *a = curl();
  va_list ap;
  va_start(ap, opt);
  CURLcode rc;
  if (opt < CURLOPTTYPE_OBJECTPOINT)
    rc = a->easy_setopt(h, opt, va_arg(ap, long));
  else if (opt < CURLOPTTYPE_FUNCTIONPOINT)
    rc = a->easy_setopt(h, opt, va_arg(ap, void *));
  else if (opt < CURLOPTTYPE_OFF_T)
    rc = a->easy_setopt(h, opt, va_arg(ap, void (*)(void)));
  else if (opt < CURLOPTTYPE_BLOB)
    rc = a->easy_setopt(h, opt, va_arg(ap, curl_off_t));
  else
    rc = a->easy_setopt(h, opt, va_arg(ap, void *));
  va_end(ap);
  return rc;
}

/* Every CURLINFO takes one pointer to where the answer goes. */
CURLcode curl_easy_getinfo(CURL *h, CURLINFO info, ...) {
  if (!h)
    return CURLE_BAD_FUNCTION_ARGUMENT;
  va_list ap;
  va_start(ap, info);
  CURLcode rc = curl()->easy_getinfo(h, info, va_arg(ap, void *));
  va_end(ap);
  return rc;
}

const char *curl_easy_strerror(CURLcode rc) {
  const curl_api *a = curl();
  return a ? a->easy_strerror(rc) : "libcurl (" CURL_LAZY_LIB ") not loadable";
}

struct curl_slist *curl_slist_append(struct curl_slist *l, const char *s) {
  const curl_api *a = curl();
  return a ? a->slist_append(l, s) : NULL;
}

void curl_slist_free_all(struct curl_slist *l) {
  if (l)
    curl()->slist_free_all(l);
}
