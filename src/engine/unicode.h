/* unicode.h: the small UTF-8 helpers the tokenizer needs: sequence lengths,
 * strict validation and sanitizing (invalid bytes -> U+FFFD), code point
 * encoding, and GPT-2's byte <-> printable-code-point table used by
 * byte-level BPE vocabularies, and the few code point properties WordPiece's
 * normalizer needs (through ICU). Pre-tokenizer character classes (\p{L},
 * \p{N}, ...) are PCRE2's job, not this file's. Knows nothing about
 * vocabularies. */
#ifndef HEARTH_UNICODE_H
#define HEARTH_UNICODE_H

#include <stddef.h>
#include <stdint.h>

/* Length of the UTF-8 sequence a lead byte announces, as llama.cpp counts
 * it: 1 for ASCII and for stray continuation bytes, else 2..4. */
int utf8_len_lead(unsigned char c);

/* Length of the valid UTF-8 character at s[0..n) (1..4), 0 when s holds only
 * the valid beginning of a longer character (needs more bytes), or -1 when
 * s[0] cannot start a valid character there. Strict: no overlongs, no
 * surrogates, nothing above U+10FFFF. */
int utf8_valid_prefix(const unsigned char *s, size_t n);

/* When utf8_valid_prefix(s, n) < 0: how many bytes form the maximal
 * invalid subpart (the lead plus the continuation bytes that were still
 * acceptable), which one U+FFFD replaces. Always >= 1. */
int utf8_invalid_len(const unsigned char *s, size_t n);

/* 1 if s[0..n) is entirely valid UTF-8. */
int utf8_is_valid(const char *s, size_t n);

/* Copies s into a new buffer (malloc) with every invalid byte replaced by
 * U+FFFD, NUL-terminated; *out_len set. NULL on allocation failure. */
char *utf8_sanitize(const char *s, size_t n, size_t *out_len);

/* Encodes code point cp into out (4 bytes room); returns bytes written. */
int utf8_encode(uint32_t cp, char *out);

/* Decodes the character at s[0..n) into *cp; returns its length, or 0 when
 * invalid (then *cp is undefined). */
int utf8_decode(const char *s, size_t n, uint32_t *cp);

/* GPT-2 byte-level mapping: the code point that stands for byte b. */
uint32_t bytelevel_cp(unsigned char b);
/* The byte a code point stands for, or -1 when cp is not in the table. */
int bytelevel_byte(uint32_t cp);

/* Code point properties (ICU), with llama.cpp's meanings. ICU is opened on
 * first use; ucp_load opens it and says why when it cannot (0, or -1 with a
 * message in err). Call it before relying on the functions below: without
 * ICU they answer as if cp had no properties (flags 0, cp unchanged). */
int ucp_load(char *err, size_t errlen);
enum {
  UCP_WHITESPACE = 1, /* White_Space property */
  UCP_CONTROL = 2,    /* general category Cc, Cf, Co or Cs */
  UCP_PUNCT = 4,      /* general category P* */
  UCP_SYMBOL = 8,     /* general category S* */
};
int ucp_flags(uint32_t cp);
/* Simple lowercase mapping (cp itself when none). */
uint32_t ucp_tolower(uint32_t cp);
/* First code point of cp's canonical decomposition (NFD), cp itself when it
 * has none: "Ä" -> "A". llama.cpp's WordPiece normalizer maps each code
 * point this way. */
uint32_t ucp_nfd_first(uint32_t cp);

#endif
