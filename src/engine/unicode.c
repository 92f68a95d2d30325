/* unicode.c: UTF-8 helpers and the GPT-2 byte-level table (see unicode.h).
 * Knows nothing about vocabularies or tokenizers. */
#include "engine/unicode.h"

#include <stdlib.h>
#include <string.h>
#include <unicode/uchar.h>
#include <unicode/unorm2.h>
#include <unicode/utf16.h>

int utf8_len_lead(unsigned char c) {
  static const int lens[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
  return lens[c >> 4];
}

/* Allowed range of the second byte for a given lead byte (strict UTF-8). */
static void second_range(unsigned char lead, unsigned char *lo,
                         unsigned char *hi) {
  *lo = 0x80;
  *hi = 0xBF;
  if (lead == 0xE0)
    *lo = 0xA0;
  else if (lead == 0xED)
    *hi = 0x9F;
  else if (lead == 0xF0)
    *lo = 0x90;
  else if (lead == 0xF4)
    *hi = 0x8F;
}

int utf8_valid_prefix(const unsigned char *s, size_t n) {
  if (n == 0)
    return 0;
  unsigned char c = s[0];
  if (c < 0x80)
    return 1;
  if (c < 0xC2 || c > 0xF4)
    return -1;
  int len = c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
  unsigned char lo, hi;
  second_range(c, &lo, &hi);
  for (int i = 1; i < len; i++) {
    if ((size_t)i >= n)
      return 0;
    unsigned char b = s[i];
    if (i == 1 ? (b < lo || b > hi) : (b & 0xC0) != 0x80)
      return -1;
  }
  return len;
}

int utf8_invalid_len(const unsigned char *s, size_t n) {
  unsigned char c = s[0];
  if (c < 0xC2 || c > 0xF4)
    return 1;
  int len = c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4, k = 1;
  unsigned char lo, hi;
  second_range(c, &lo, &hi);
  while (k < len && (size_t)k < n) {
    unsigned char b = s[k];
    if (k == 1 ? (b < lo || b > hi) : (b & 0xC0) != 0x80)
      break;
    k++;
  }
  return k;
}

int utf8_is_valid(const char *s, size_t n) {
  const unsigned char *p = (const unsigned char *)s;
  size_t i = 0;
  while (i < n) {
    if (p[i] < 0x80) {
      i++;
      continue;
    }
    int l = utf8_valid_prefix(p + i, n - i);
    if (l <= 0)
      return 0;
    i += (size_t)l;
  }
  return 1;
}

char *utf8_sanitize(const char *s, size_t n, size_t *out_len) {
  const unsigned char *p = (const unsigned char *)s;
  char *out = malloc(n * 3 + 1);
  if (!out)
    return NULL;
  size_t i = 0, o = 0;
  while (i < n) {
    int l = utf8_valid_prefix(p + i, n - i);
    if (l > 0) {
      memcpy(out + o, p + i, (size_t)l);
      o += (size_t)l;
      i += (size_t)l;
    } else {
      memcpy(out + o, "\xEF\xBF\xBD", 3);
      o += 3;
      i++;
    }
  }
  out[o] = 0;
  *out_len = o;
  return out;
}

int utf8_encode(uint32_t cp, char *out) {
  unsigned char *o = (unsigned char *)out;
  if (cp < 0x80) {
    o[0] = (unsigned char)cp;
    return 1;
  }
  if (cp < 0x800) {
    o[0] = (unsigned char)(0xC0 | (cp >> 6));
    o[1] = (unsigned char)(0x80 | (cp & 0x3F));
    return 2;
  }
  if (cp < 0x10000) {
    o[0] = (unsigned char)(0xE0 | (cp >> 12));
    o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    o[2] = (unsigned char)(0x80 | (cp & 0x3F));
    return 3;
  }
  o[0] = (unsigned char)(0xF0 | (cp >> 18));
  o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
  o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
  o[3] = (unsigned char)(0x80 | (cp & 0x3F));
  return 4;
}

int utf8_decode(const char *s, size_t n, uint32_t *cp) {
  const unsigned char *p = (const unsigned char *)s;
  int l = utf8_valid_prefix(p, n);
  if (l <= 0)
    return 0;
  static const unsigned char mask[5] = {0, 0x7F, 0x1F, 0x0F, 0x07};
  uint32_t v = p[0] & mask[l];
  for (int i = 1; i < l; i++)
    v = (v << 6) | (p[i] & 0x3F);
  *cp = v;
  return l;
}

/* Bytes GPT-2 keeps as themselves: printable Latin-1 except the space and
 * the soft hyphen. The others map, in byte order, to U+0100 onwards. */
static int bytelevel_is_direct(unsigned b) {
  return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) ||
         (b >= 0xAE && b <= 0xFF);
}

/* Non-direct bytes are 0x00-0x20 (33), 0x7F-0xA0 (34) and 0xAD (1): 68 in
 * all, numbered in byte order. */
uint32_t bytelevel_cp(unsigned char b) {
  if (bytelevel_is_direct(b))
    return b;
  if (b <= 0x20)
    return 256 + b;
  if (b <= 0xA0)
    return 256 + 33 + (uint32_t)(b - 0x7F);
  return 256 + 67; /* 0xAD */
}

int bytelevel_byte(uint32_t cp) {
  if (cp < 256)
    return bytelevel_is_direct(cp) ? (int)cp : -1;
  if (cp >= 256 + 68)
    return -1;
  uint32_t k = cp - 256;
  if (k < 33)
    return (int)k;
  if (k < 67)
    return (int)(0x7F + k - 33);
  return 0xAD;
}

/* ---- code point properties (ICU) ---- */

int ucp_flags(uint32_t cp) {
  if (cp > 0x10FFFF)
    return 0;
  UChar32 c = (UChar32)cp;
  int f = u_hasBinaryProperty(c, UCHAR_WHITE_SPACE) ? UCP_WHITESPACE : 0;
  switch (u_charType(c)) {
  case U_CONTROL_CHAR:
  case U_FORMAT_CHAR:
  case U_PRIVATE_USE_CHAR:
  case U_SURROGATE:
    return f | UCP_CONTROL;
  case U_DASH_PUNCTUATION:
  case U_START_PUNCTUATION:
  case U_END_PUNCTUATION:
  case U_CONNECTOR_PUNCTUATION:
  case U_OTHER_PUNCTUATION:
  case U_INITIAL_PUNCTUATION:
  case U_FINAL_PUNCTUATION:
    return f | UCP_PUNCT;
  case U_MATH_SYMBOL:
  case U_CURRENCY_SYMBOL:
  case U_MODIFIER_SYMBOL:
  case U_OTHER_SYMBOL:
    return f | UCP_SYMBOL;
  default:
    return f;
  }
}

uint32_t ucp_tolower(uint32_t cp) {
  return cp > 0x10FFFF ? cp : (uint32_t)u_tolower((UChar32)cp);
}

uint32_t ucp_nfd_first(uint32_t cp) {
  if (cp < 0xC0 || cp > 0x10FFFF)
    return cp; /* nothing below U+00C0 decomposes */
  UErrorCode e = U_ZERO_ERROR;
  const UNormalizer2 *nfd = unorm2_getNFDInstance(&e);
  if (U_FAILURE(e) || !nfd)
    return cp;
  UChar buf[32];
  int32_t n = unorm2_getDecomposition(nfd, (UChar32)cp, buf, 32, &e);
  if (U_FAILURE(e) || n <= 0)
    return cp;
  UChar32 first;
  int32_t i = 0;
  U16_NEXT(buf, i, n, first);
  return (uint32_t)first;
}
