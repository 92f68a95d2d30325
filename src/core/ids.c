/* Object ids: prefix + base62 from the kernel CSPRNG (getrandom(2); no
 * library state, so nothing to initialize or keep resident). Bytes >= 248
 * (= 4 * 62) are rejected so every base62 digit is equally likely (no modulo
 * bias). Knows nothing about storage or HTTP. */
#include "core/ids.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

static const char b62[] =
    "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/* Fills buf[0..n) from the kernel CSPRNG; blocks only until it is seeded at
 * boot. Aborts if it fails: without it no id is safe to hand out. */
static void random_bytes(unsigned char *buf, size_t n) {
  size_t got = 0;
  while (got < n) {
    ssize_t k = getrandom(buf + got, n - got, 0);
    if (k < 0 && errno == EINTR)
      continue;
    if (k <= 0)
      abort();
    got += (size_t)k;
  }
}

/* Fills out[0..n) with unbiased base62 digits. */
static void random_base62(char *out, size_t n) {
  unsigned char buf[64];
  size_t got = 0;
  while (got < n) {
    random_bytes(buf, sizeof buf);
    for (size_t i = 0; i < sizeof buf && got < n; i++)
      if (buf[i] < 248)
        out[got++] = b62[buf[i] % 62];
  }
}

void id_new(const char *prefix, char *out, size_t outlen) {
  char tmp[ID_RANDOM_LEN];
  if (outlen == 0)
    return;
  size_t plen = strlen(prefix);
  random_base62(tmp, sizeof tmp);
  size_t n = 0;
  for (size_t i = 0; i < plen && n + 1 < outlen; i++)
    out[n++] = prefix[i];
  for (size_t i = 0; i < sizeof tmp && n + 1 < outlen; i++)
    out[n++] = tmp[i];
  out[n] = '\0';
}

int id_valid(const char *prefix, const char *s) {
  size_t plen = strlen(prefix);
  if (!s || strncmp(s, prefix, plen) != 0)
    return 0;
  const char *r = s + plen;
  size_t n = strlen(r);
  if (n == 0 || n > 63)
    return 0;
  for (size_t i = 0; i < n; i++) {
    char c = r[i];
    int ok = (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') ||
             (c >= 'a' && c <= 'z') || c == '_' || c == '-';
    if (!ok)
      return 0;
  }
  return 1;
}
