/* Object ids with the platform's prefixes: prefix + 24 base62 characters
 * drawn, without modulo bias, from the kernel CSPRNG (getrandom(2)).
 * Knows nothing about which resource uses which prefix beyond the constants
 * below, nor about storage or HTTP. */
#ifndef HEARTH_CORE_IDS_H
#define HEARTH_CORE_IDS_H

#include <stddef.h>

#define ID_RANDOM_LEN 24 /* base62 characters after the prefix */
#define ID_MAX 64        /* buffer size that fits every id hearth makes */

/* Writes prefix followed by ID_RANDOM_LEN random base62 chars into out,
 * NUL-terminated. Truncates (still terminated) when outlen is too small;
 * outlen >= strlen(prefix) + ID_RANDOM_LEN + 1 never truncates. Aborts only
 * if the CSPRNG itself fails (it never does on Linux with getrandom). */
void id_new(const char *prefix, char *out, size_t outlen);

/* 1 when s looks like an id hearth could have made with this prefix
 * (prefix, then 1..63 chars of [A-Za-z0-9_-]); cheap pre-check before a
 * lookup so malformed ids answer 404 without touching the store. */
int id_valid(const char *prefix, const char *s);

#endif
