/* unicode.c: UTF-8 helpers and the GPT-2 byte-level table (see unicode.h).
 * Code point properties come from ICU, opened with dlopen the first time a
 * vocabulary needs them (only WordPiece does): ICU and the libstdc++ it pulls
 * in cost ~1.4 MB resident, which a server that never loads such a model
 * should not pay. Knows nothing about vocabularies or tokenizers. */
#include "engine/unicode.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unicode/uchar.h>
#include <unicode/unorm2.h>
#include <unicode/utf16.h>
#include <unicode/uvernum.h>

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

/* ---- code point properties (ICU, loaded on first use) ---- */

/* ICU's headers rename every entry point with its version suffix
 * (u_charType -> u_charType_72); expanding the name before stringizing it
 * gives the symbol the library built against exports. */
#define UCP_STR(x) #x
#define UCP_SYM(x) UCP_STR(x)
#define UCP_ICU_LIB "libicuuc.so." UCP_SYM(U_ICU_VERSION_MAJOR_NUM)

typedef struct {
  UBool (*has_binary_property)(UChar32, UProperty);
  int8_t (*char_type)(UChar32);
  UChar32 (*to_lower)(UChar32);
  const UNormalizer2 *nfd; /* NULL when ICU has no NFD data */
  int32_t (*decomposition)(const UNormalizer2 *, UChar32, UChar *, int32_t,
                           UErrorCode *);
  char err[256]; /* why loading failed; "" when it did not */
} icu_api;

/* Filled once by icu_open (pthread_once), read-only afterwards. */
static icu_api icu_tab;
static pthread_once_t icu_once = PTHREAD_ONCE_INIT;

static void *icu_sym(void *lib, const char *name) {
  void *f = dlsym(lib, name);
  if (!f && !icu_tab.err[0])
    snprintf(icu_tab.err, sizeof icu_tab.err, "ICU (%s) lacks %s", UCP_ICU_LIB,
             name);
  return f;
}

static void icu_open(void) {
  void *lib = dlopen(UCP_ICU_LIB, RTLD_NOW | RTLD_LOCAL);
  if (!lib) {
    const char *why = dlerror();
    snprintf(icu_tab.err, sizeof icu_tab.err, "cannot load ICU: %s",
             why ? why : UCP_ICU_LIB);
    return;
  }
  icu_tab.has_binary_property = icu_sym(lib, UCP_SYM(u_hasBinaryProperty));
  icu_tab.char_type = icu_sym(lib, UCP_SYM(u_charType));
  icu_tab.to_lower = icu_sym(lib, UCP_SYM(u_tolower));
  icu_tab.decomposition = icu_sym(lib, UCP_SYM(unorm2_getDecomposition));
  const UNormalizer2 *(*get_nfd)(UErrorCode *) =
      icu_sym(lib, UCP_SYM(unorm2_getNFDInstance));
  if (icu_tab.err[0])
    return; /* the library stays open: ICU cannot be unloaded safely */
  UErrorCode e = U_ZERO_ERROR;
  icu_tab.nfd = get_nfd(&e);
  if (U_FAILURE(e))
    icu_tab.nfd = NULL;
}

/* The loaded API, or NULL when ICU could not be loaded. */
static const icu_api *icu(void) {
  pthread_once(&icu_once, icu_open);
  return icu_tab.err[0] ? NULL : &icu_tab;
}

int ucp_load(char *err, size_t errlen) {
  if (icu())
    return 0;
  if (err && errlen)
    snprintf(err, errlen, "%s", icu_tab.err);
  return -1;
}

int ucp_flags(uint32_t cp) {
  const icu_api *api = icu();
  if (cp > 0x10FFFF || !api)
    return 0;
  UChar32 c = (UChar32)cp;
  int f = api->has_binary_property(c, UCHAR_WHITE_SPACE) ? UCP_WHITESPACE : 0;
  switch (api->char_type(c)) {
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
  const icu_api *api = icu();
  return cp > 0x10FFFF || !api ? cp : (uint32_t)api->to_lower((UChar32)cp);
}

uint32_t ucp_nfd_first(uint32_t cp) {
  if (cp < 0xC0 || cp > 0x10FFFF)
    return cp; /* nothing below U+00C0 decomposes */
  const icu_api *api = icu();
  if (!api || !api->nfd)
    return cp;
  UErrorCode e = U_ZERO_ERROR;
  UChar buf[32];
  int32_t n = api->decomposition(api->nfd, (UChar32)cp, buf, 32, &e);
  if (U_FAILURE(e) || n <= 0)
    return cp;
  UChar32 first;
  int32_t i = 0;
  U16_NEXT(buf, i, n, first);
  return (uint32_t)first;
}
