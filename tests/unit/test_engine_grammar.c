/* Tests of the JSON-object grammar (engine/grammar.h): the automaton over
 * byte strings (a one-byte-per-token vocabulary) on valid and invalid JSON,
 * depth and whitespace limits, UTF-8 split across multi-byte tokens,
 * agreement of grammar_apply with grammar_accept, the closing budget, a
 * differential test against jansson on random edits of valid documents;
 * then random generations (uniform random logits, budgets 8..200) over
 * fixture vocabularies (SmolLM2 49k, Qwen2.5 151k, tiny SentencePiece and
 * BPE ones) and, when ../shared is there, llama.cpp's real vocabularies:
 * the output must always parse as a JSON object (jansson) within the
 * budget. Prints the vocabulary build time and grammar_apply's cost. The
 * fixture models are made on the fly; ../shared is optional. */
#include <jansson.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

#include "engine/engine.h"
#include "engine/fixture.h"
#include "engine/gguf.h"
#include "engine/grammar.h"
#include "engine/tokenizer.h"
#include "t.h"

/* ---- a byte vocabulary: token b < 256 is byte b, 256 is EOG ---- */

#define NB 257
#define EOG 256

static grammar_vocab *byte_vocab(void) {
  static char bytes[256];
  const char *pieces[NB];
  int lens[NB];
  uint8_t eog[NB] = {0};
  for (int b = 0; b < 256; b++) {
    bytes[b] = (char)b;
    pieces[b] = &bytes[b];
    lens[b] = 1;
  }
  pieces[EOG] = NULL;
  lens[EOG] = 0;
  eog[EOG] = 1;
  return grammar_vocab_new_pieces(NB, pieces, lens, eog);
}

/* Feeds s byte by byte: the index of the first refused byte, or -1 when
 * every byte was accepted; *complete gets grammar_complete at the end. */
static int feed(const grammar_vocab *v, const char *s, size_t n,
                int *complete) {
  grammar *g = grammar_new_json_object(v);
  int bad = -1;
  for (size_t i = 0; i < n && bad < 0; i++)
    if (grammar_accept(g, (uint8_t)s[i]))
      bad = (int)i;
  *complete = grammar_complete(g);
  grammar_free(g);
  return bad;
}

static int accepts(const grammar_vocab *v, const char *s) {
  int c;
  return feed(v, s, strlen(s), &c) < 0 && c;
}

static const char *VALID[] = {
    "{}",
    " {}",
    "{ }",
    "{\"a\":1}",
    "{\n  \"a\": 1,\n  \"b\": [1, 2]\n}",
    "{\"a\":[1,-0,0.5,1e5,-1.25E-3,2E+10,0e0,true,false,null,{},[]]}",
    "{\"s\":\"\\\" \\\\ \\/ \\b \\f \\n \\r \\t \\u00e9 \\uD83D\\uDE00\"}",
    "{\"\xc3\xa9\":\"\xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80 \xef\xbf\xbd\"}",
    "{\"k\":\"\\u0000\"}",
    "{\"\":\"\"}",
    "{\"a\":{\"b\":{\"c\":[[[]]]}}}",
    "{\"n\":123456789012345678}",
    "{\"n\":-1.5e-99}",
    "{\"a\" : 1 , \"b\" :\t2\r\n}",
};

static const char *INVALID[] = {
    "[]",
    "1",
    "\"x\"",
    "{\"a\":01}",
    "{\"a\":1.}",
    "{\"a\":.5}",
    "{\"a\":1e}",
    "{\"a\":-}",
    "{\"a\":+1}",
    "{\"a\":truex}",
    "{\"a\":nul}",
    "{a:1}",
    "{\"a\" 1}",
    "{\"a\":1,}",
    "{,}",
    "{\"a\":[1,]}",
    "{\"a\":[1}",
    "{\"a\":1]",
    "{\"a\":\"\\x\"}",
    "{\"a\":\"\\uD800\"}",
    "{\"a\":\"\\uDC00\"}",
    "{\"a\":\"\\uD800\\u0041\"}",
    "{\"a\":\"\\u12G4\"}",
    "{\"a\":\"\t\"}",
    "{\"a\":\"\n\"}",
    "{\"a\":\"\xc0\x80\"}",
    "{\"a\":\"\xed\xa0\x80\"}",
    "{\"a\":\"\xe0\x80\x80\"}",
    "{\"a\":\"\xf0\x80\x80\x80\"}",
    "{\"a\":\"\xf4\x90\x80\x80\"}",
    "{\"a\":\"\xf5\x80\x80\x80\"}",
    "{\"a\":\"\x80\"}",
    "{\"a\":\"\xc3\"}",
    "{\"a\":\"\xe6\x97\"}",
    "{} ",
    "{}{}",
    "{}\n",
    "{\"n\":1234567890123456789}",
    "{\"n\":1e100}",
    "{\"a\":1 2}",
    "{\"a\"::1}",
    "{\"a\":\"x}",
    "{",
    "",
    "{\"a\":TRUE}",
    "{\"a\":NaN}",
    "{\"a\":Infinity}",
};

static void test_valid_corpus(void) {
  grammar_vocab *v = byte_vocab();
  CHECK(v != NULL);
  for (size_t i = 0; i < sizeof VALID / sizeof *VALID; i++) {
    CHECKF(accepts(v, VALID[i]), "refused valid %s", VALID[i]);
    json_error_t e;
    json_t *j = json_loads(VALID[i], JSON_ALLOW_NUL, &e);
    CHECKF(j && json_is_object(j), "jansson: %s: %s", VALID[i], e.text);
    json_decref(j);
  }
  grammar_vocab_free(v);
}

static void test_invalid_corpus(void) {
  grammar_vocab *v = byte_vocab();
  for (size_t i = 0; i < sizeof INVALID / sizeof *INVALID; i++)
    CHECKF(!accepts(v, INVALID[i]), "accepted invalid %s", INVALID[i]);
  grammar_vocab_free(v);
}

/* Refusal happens at the offending byte, not later. */
static void test_refusal_position(void) {
  grammar_vocab *v = byte_vocab();
  int c;
  CHECK_INT(feed(v, "{\"a\":01", 7, &c), 6);
  CHECK_INT(feed(v, "[", 1, &c), 0);
  CHECK_INT(feed(v, "{\"a\":\"\xc0", 7, &c), 6);
  CHECK_INT(feed(v, "{\"a\":\"\\uDC", 10, &c), 9);
  CHECK_INT(feed(v, "{}}", 3, &c), 2);
  CHECK_INT(feed(v, "{\"a\":tx", 7, &c), 6);
  grammar_vocab_free(v);
}

/* Nesting: 64 levels (top-level object included) pass, the 65th opener is
 * refused (not an error: just not allowed). */
static void test_depth_limit(void) {
  grammar_vocab *v = byte_vocab();
  char buf[512];
  int n = 0;
  buf[n++] = '{';
  n += sprintf(buf + n, "\"a\":");
  for (int i = 1; i < 64; i++)
    buf[n++] = '[';
  for (int i = 1; i < 64; i++)
    buf[n++] = ']';
  buf[n++] = '}';
  buf[n] = 0;
  CHECKF(accepts(v, buf), "64 levels refused");
  n = 0;
  n += sprintf(buf + n, "{\"a\":");
  for (int i = 1; i < 65; i++)
    buf[n++] = '[';
  int c;
  CHECK_INT(feed(v, buf, (size_t)n, &c), n - 1);
  /* at depth 64 a string still goes in */
  buf[n - 1] = '"';
  buf[n++] = '"';
  for (int i = 1; i < 64; i++)
    buf[n++] = ']';
  buf[n++] = '}';
  buf[n] = 0;
  CHECKF(accepts(v, buf), "string at depth 64 refused");
  grammar_vocab_free(v);
}

static void test_whitespace_bound(void) {
  grammar_vocab *v = byte_vocab();
  char buf[256];
  int c;
  /* 16 blanks then a newline pass; a 17th blank is refused */
  snprintf(buf, sizeof buf, "{%16s\n}", "");
  CHECK(accepts(v, buf));
  snprintf(buf, sizeof buf, "{%17s}", "");
  CHECK_INT(feed(v, buf, strlen(buf), &c), 17);
  CHECK_INT(feed(v, "{\n\n}", 4, &c), 2);
  CHECK_INT(feed(v, "{\r\r}", 4, &c), 2);
  /* the run restarts after each token of JSON */
  snprintf(buf, sizeof buf, "{%16s\"a\"%16s:%16s1%16s}", "", "", "", "");
  CHECK(accepts(v, buf));
  /* after a newline: 16 + 4 per open level (an indentation) */
  snprintf(buf, sizeof buf, "{%16s\n%20s\"a\":[\n%24s1]}", "", "", "");
  CHECK(accepts(v, buf));
  snprintf(buf, sizeof buf, "{\n%21s", "");
  CHECK_INT(feed(v, buf, strlen(buf), &c), 22);
  snprintf(buf, sizeof buf, "{\"a\":[\n%25s", "");
  CHECK_INT(feed(v, buf, strlen(buf), &c), 31);
  /* at depth 64: 16 + 256 blanks (more than a byte counts) */
  char deep[512];
  int n = sprintf(deep, "{\"a\":");
  for (int i = 1; i < 64; i++)
    deep[n++] = '[';
  deep[n++] = '\n';
  memset(deep + n, ' ', 273);
  CHECK_INT(feed(v, deep, (size_t)n + 273, &c), n + 272);
  grammar_vocab_free(v);
}

/* For every state reached on a random valid document, grammar_apply
 * (unbounded) allows exactly the tokens grammar_accept takes. */
static void test_apply_matches_accept(void) {
  /* tokens: all bytes, EOG, and some multi-byte pieces (UTF-8 split) */
  static const char *extra[] = {
      "{\"",      "\":",    "\",\"", "},",   "true", "\xe6", "\xe6\x97",
      "\x97\xa5", "\xa5\"", "12",    "0.5",  "e+",   "\\u",  "D83D",
      "\\uDE00",  "null}",  " \"",   "\n  ", "}}",   "\"}"};
  enum { NX = sizeof extra / sizeof *extra, N = NB + NX };
  static char bytes[256];
  const char *pieces[N];
  int lens[N];
  uint8_t eog[N] = {0};
  for (int b = 0; b < 256; b++)
    bytes[b] = (char)b, pieces[b] = &bytes[b], lens[b] = 1;
  pieces[EOG] = NULL, lens[EOG] = 0, eog[EOG] = 1;
  for (int i = 0; i < NX; i++)
    pieces[NB + i] = extra[i], lens[NB + i] = (int)strlen(extra[i]);
  grammar_vocab *v = grammar_vocab_new_pieces(N, pieces, lens, eog);
  CHECK(v != NULL);
  const char *doc = "{\"\xe6\x97\xa5\": [1, -2.5e+3, \"x\\uD83D\\uDE00\\n\","
                    " {\"k\": null}], \"t\" : true}";
  size_t n = strlen(doc);
  float logits[N];
  int bad = 0;
  for (size_t pre = 0; pre <= n && !bad; pre++) {
    grammar *g = grammar_new_json_object(v);
    for (size_t i = 0; i < pre; i++)
      CHECK_INT(grammar_accept(g, (uint8_t)doc[i]), 0);
    for (int t = 0; t < N; t++)
      logits[t] = 0;
    int allowed = grammar_apply(g, logits, N, 0), count = 0;
    for (int t = 0; t < N; t++) {
      grammar *h = grammar_new_json_object(v);
      for (size_t i = 0; i < pre; i++)
        grammar_accept(h, (uint8_t)doc[i]);
      int ok = grammar_accept(h, t) == 0;
      grammar_free(h);
      count += isfinite(logits[t]) ? 1 : 0;
      if (ok != (isfinite(logits[t]) != 0)) {
        CHECKF(0, "prefix %zu token %d: accept %d, apply %g", pre, t, ok,
               logits[t]);
        bad = 1;
      }
    }
    CHECK_INT(allowed, count);
    CHECK(allowed >= 1);
    grammar_free(g);
  }
  grammar_vocab_free(v);
}

/* UTF-8 split over tokens: lead byte, then the rest in another token. */
static void test_utf8_split(void) {
  const char *pieces[] = {"{\"a\":\"", "\xe6", "\x97\xa5", "\"}", "\xf0\x9f",
                          "\x98",      "\x80", "\x97",     NULL};
  int lens[9];
  uint8_t eog[9] = {0, 0, 0, 0, 0, 0, 0, 0, 1};
  for (int i = 0; i < 9; i++)
    lens[i] = pieces[i] ? (int)strlen(pieces[i]) : 0;
  grammar_vocab *v = grammar_vocab_new_pieces(9, pieces, lens, eog);
  grammar *g = grammar_new_json_object(v);
  CHECK_INT(grammar_accept(g, 0), 0);
  CHECK_INT(grammar_accept(g, 1), 0);  /* E6 */
  CHECK_INT(grammar_accept(g, 3), -1); /* '"' inside the character */
  CHECK_INT(grammar_accept(g, 2), 0);  /* 97 A5 */
  CHECK_INT(grammar_accept(g, 4), 0);  /* F0 9F */
  CHECK_INT(grammar_accept(g, 5), 0);  /* 98 */
  CHECK_INT(grammar_accept(g, 8), -1); /* EOG before complete */
  CHECK_INT(grammar_accept(g, 6), 0);  /* 80 */
  CHECK_INT(grammar_accept(g, 7), -1); /* a lone continuation byte */
  CHECK(!grammar_complete(g));
  CHECK_INT(grammar_accept(g, 3), 0);
  CHECK(grammar_complete(g));
  CHECK_INT(grammar_accept(g, 8), 0);
  CHECK_INT(grammar_accept(g, 3), -1);
  CHECK_INT(grammar_accept(g, 99), -1);
  CHECK_INT(grammar_accept(g, -1), -1);
  grammar_free(g);
  grammar_vocab_free(v);
}

/* After completion only EOG is allowed; before, EOG is not. */
static void test_eog_only_after_complete(void) {
  grammar_vocab *v = byte_vocab();
  grammar *g = grammar_new_json_object(v);
  float logits[NB];
  for (int t = 0; t < NB; t++)
    logits[t] = 1;
  grammar_apply(g, logits, NB, 0);
  CHECK(isinf(logits[EOG]));
  CHECK(isfinite(logits['{']) && isfinite(logits[' ']));
  CHECK(isinf(logits['[']));
  grammar_accept(g, '{');
  grammar_accept(g, '}');
  for (int t = 0; t < NB; t++)
    logits[t] = 1;
  CHECK_INT(grammar_apply(g, logits, NB, 0), 1);
  CHECK(isfinite(logits[EOG]));
  CHECK(isinf(logits[' ']) && isinf(logits['}']));
  /* logits past the vocabulary are masked too */
  float big[NB + 3];
  for (int t = 0; t < NB + 3; t++)
    big[t] = 1;
  CHECK_INT(grammar_apply(g, big, NB + 3, 0), 1);
  CHECK(isinf(big[NB]) && isinf(big[NB + 2]));
  grammar_free(g);
  /* the same inside a string (plain tokens allowed in bulk), and a shorter
   * logits array than the vocabulary */
  g = grammar_new_json_object(v);
  grammar_accept(g, '{');
  grammar_accept(g, '"');
  for (int t = 0; t < NB + 3; t++)
    big[t] = 1;
  CHECK_INT(grammar_apply(g, big, NB + 3, 0), 1 + 94 + 1 + 30 + 16 + 5);
  CHECK(isinf(big[NB]) && isinf(big[NB + 2]) && isinf(big[EOG]));
  CHECK(isfinite(big['a']) && isfinite(big['"']) && isfinite(big[0xC2]));
  CHECK(isinf(big[0x80]) && isinf(big[0xC0]) && isinf(big['\n']));
  for (int t = 0; t < NB; t++)
    big[t] = 1;
  CHECK_INT(grammar_apply(g, big, 0x80, 0), 94 + 2);
  grammar_free(g);
  grammar_vocab_free(v);
}

/* Budget: "{\"ab" needs 4 tokens to close ('"', ':', '0', '}'). With 4
 * left only '"' fits; with 5 any plain string byte fits too. */
static void test_budget_exact(void) {
  grammar_vocab *v = byte_vocab();
  grammar *g = grammar_new_json_object(v);
  const char *pre = "{\"ab";
  for (const char *p = pre; *p; p++)
    grammar_accept(g, (uint8_t)*p);
  float logits[NB];
  for (int t = 0; t < NB; t++)
    logits[t] = 0;
  CHECK_INT(grammar_apply(g, logits, NB, 4), 1);
  CHECK(isfinite(logits['"']));
  for (int t = 0; t < NB; t++)
    logits[t] = 0;
  int wide = grammar_apply(g, logits, NB, 5);
  CHECK_INT(wide, 95); /* 0x20..0x7F but '"' and '\\', then '"' */
  CHECK(isfinite(logits['x']) && isfinite(logits['"']));
  CHECK(isinf(logits['\\'])); /* an escape needs 2 more: too many */
  /* too small a budget never leaves nothing allowed: the nearest close */
  for (int t = 0; t < NB; t++)
    logits[t] = 0;
  CHECK_INT(grammar_apply(g, logits, NB, 1), 1);
  CHECK(isfinite(logits['"']));
  grammar_free(g);
  /* from the start, budget 2: '{' then '}' only */
  g = grammar_new_json_object(v);
  for (int t = 0; t < NB; t++)
    logits[t] = 0;
  CHECK_INT(grammar_apply(g, logits, NB, 2), 1);
  CHECK(isfinite(logits['{']));
  grammar_accept(g, '{');
  for (int t = 0; t < NB; t++)
    logits[t] = 0;
  CHECK_INT(grammar_apply(g, logits, NB, 1), 1);
  CHECK(isfinite(logits['}']));
  grammar_free(g);
  grammar_vocab_free(v);
}

/* The per-call stamps wrap after 65535 calls: a token allowed long ago
 * ('\n' after a value) must not come back inside a string. */
static void test_stamp_wrap(void) {
  grammar_vocab *v = byte_vocab();
  grammar *g = grammar_new_json_object(v);
  float logits[NB] = {0};
  const char *pre = "{\"a\":1";
  for (const char *p = pre; *p; p++)
    grammar_accept(g, (uint8_t)*p);
  grammar_apply(g, logits, NB, 0);
  CHECK(isfinite(logits['\n']));
  grammar_accept(g, ',');
  grammar_accept(g, '"');
  int bad = 0;
  for (int i = 0; i < 70000 && !bad; i++) {
    logits['\n'] = 0;
    if (grammar_apply(g, logits, NB, 0) != 147 || isfinite(logits['\n']))
      bad = i + 1;
  }
  CHECK_INT(bad, 0);
  grammar_free(g);
  grammar_vocab_free(v);
}

/* Bad arguments: NULL or empty, never a crash. */
static void test_bad_args(void) {
  float l[4] = {0};
  CHECK(grammar_vocab_new(NULL) == NULL);
  CHECK(grammar_vocab_new_pieces(0, NULL, NULL, NULL) == NULL);
  CHECK(grammar_new_json_object(NULL) == NULL);
  CHECK_INT(grammar_apply(NULL, l, 4, 0), 0);
  CHECK_INT(grammar_accept(NULL, 0), -1);
  CHECK_INT(grammar_complete(NULL), 0);
  grammar_free(NULL);
  grammar_vocab_free(NULL);
  grammar_vocab *v = byte_vocab();
  grammar *g = grammar_new_json_object(v);
  CHECK_INT(grammar_apply(g, NULL, 4, 0), 0);
  CHECK_INT(grammar_apply(g, l, 0, 0), 0);
  CHECK_INT(grammar_accept(g, NB), -1);
  /* a vocabulary without the bytes to close: the budget cannot be met,
   * tokens are still allowed (never zero) */
  const char *pieces[] = {"{", "\"a", "\":1}"};
  int lens[] = {1, 2, 4};
  grammar_vocab *w = grammar_vocab_new_pieces(3, pieces, lens, NULL);
  grammar *h = grammar_new_json_object(w);
  float m[3] = {0};
  CHECK_INT(grammar_apply(h, m, 3, 3), 1);
  CHECK(isfinite(m[0]));
  CHECK_INT(grammar_accept(h, 0), 0);
  m[0] = m[1] = m[2] = 0;
  /* '"a' and '":1}' (a key so far) both open a key nothing can close */
  CHECK_INT(grammar_apply(h, m, 3, 2), 2);
  CHECK(isfinite(m[1]) && isfinite(m[2]) && isinf(m[0]));
  CHECK_INT(grammar_accept(h, 1), 0);
  CHECK_INT(grammar_accept(h, 2), 0);
  CHECK(grammar_complete(h));
  CHECK_INT(grammar_apply(h, m, 3, 1), 0); /* complete, no EOG token */
  grammar_free(h);
  grammar_vocab_free(w);
  grammar_free(g);
  grammar_vocab_free(v);
}

/* ---- differential test against jansson ---- */

static uint64_t rng_next(uint64_t *s) {
  *s ^= *s << 13;
  *s ^= *s >> 7;
  *s ^= *s << 17;
  return *s;
}

static int is_digit3(const char *p) {
  return p[0] >= '0' && p[0] <= '9' && p[1] >= '0' && p[1] <= '9' &&
         p[2] >= '0' && p[2] <= '9';
}

/* 1 when doc uses one of the grammar's deliberate limits, which jansson
 * does not have: a whitespace byte next to another, 3+ digits in a row, a
 * \u escape (surrogate pairing is checked elsewhere). */
static int outside_limits(const char *d, size_t n) {
  for (size_t i = 0; i + 1 < n; i++) {
    if (strchr(" \t\r\n", d[i]) && d[i] && d[i + 1] &&
        strchr(" \t\r\n", d[i + 1]))
      return 1;
    if (d[i] == '\\' && d[i + 1] == 'u')
      return 1;
    if (i + 2 < n && is_digit3(d + i))
      return 1;
  }
  return 0;
}

/* Random edits of valid documents: whatever the grammar accepts jansson
 * parses as an object, and whatever jansson parses as an object (within
 * the grammar's limits, trailing whitespace aside) the grammar accepts. */
static void test_differential_mutations(void) {
  static const char alphabet[] = "{}[]\":,0123456789.-+eEtrufalsn \n\t\\/ubx"
                                 "\xc3\xa9\xe6\x97\xa5\x80\xff";
  grammar_vocab *v = byte_vocab();
  uint64_t r = 12345;
  char doc[512];
  int agree_ok = 0, agree_bad = 0, limited_n = 0, mismatches = 0;
  const int rounds = 40000;
  for (int round = 0; round < rounds && mismatches < 5; round++) {
    const char *base = VALID[rng_next(&r) % (sizeof VALID / sizeof *VALID)];
    size_t n = strlen(base);
    memcpy(doc, base, n);
    int edits = 1 + (int)(rng_next(&r) % 3);
    for (int e = 0; e < edits; e++) {
      size_t at = n ? rng_next(&r) % n : 0;
      char c = alphabet[rng_next(&r) % (sizeof alphabet - 1)];
      switch (rng_next(&r) % 3) {
      case 0: /* replace */
        if (n)
          doc[at] = c;
        break;
      case 1: /* insert */
        if (n + 1 < sizeof doc) {
          memmove(doc + at + 1, doc + at, n - at);
          doc[at] = c;
          n++;
        }
        break;
      default: /* delete */
        if (n) {
          memmove(doc + at, doc + at + 1, n - at - 1);
          n--;
        }
      }
    }
    int complete;
    int gram = feed(v, doc, n, &complete) < 0 && complete;
    json_error_t err;
    json_t *j = json_loadb(doc, n, JSON_ALLOW_NUL, &err);
    int jans = j && json_is_object(j);
    json_decref(j);
    size_t core = n;
    while (core && strchr(" \t\r\n", doc[core - 1]) && doc[core - 1])
      core--;
    int limited = outside_limits(doc, n) || core != n;
    if (gram && !jans) {
      CHECKF(0, "grammar accepts, jansson refuses (%s): %.*s", err.text, (int)n,
             doc);
      mismatches++;
    } else if (jans && !gram && !limited) {
      CHECKF(0, "jansson accepts, grammar refuses: %.*s", (int)n, doc);
      mismatches++;
    } else if (gram)
      agree_ok++;
    else if (!jans)
      agree_bad++;
    else
      limited_n++;
  }
  printf("  differential: %d mutants: %d valid for both, %d invalid for both, "
         "%d valid JSON refused by a grammar limit\n",
         rounds, agree_ok, agree_bad, limited_n);
  CHECK(agree_ok > 1000); /* the mutants are not all broken */
  CHECK(agree_bad > 1000);
  grammar_vocab_free(v);
}

/* Random generations over the byte vocabulary (every closing byte is a
 * single token) with small budgets: always a complete object in time. */
static void test_random_bytes_budgets(void) {
  grammar_vocab *v = byte_vocab();
  uint64_t r = 777;
  float logits[NB];
  char text[128];
  for (int round = 0; round < 3000; round++) {
    int budget = 2 + (int)(rng_next(&r) % 40);
    grammar *g = grammar_new_json_object(v);
    int len = 0, steps = 0, ended = 0;
    for (; steps < budget && !ended; steps++) {
      for (int t = 0; t < NB; t++)
        logits[t] = (float)(rng_next(&r) >> 40);
      int allowed = grammar_apply(g, logits, NB, budget - steps);
      int best = -1;
      for (int t = 0; t < NB; t++)
        if (isfinite(logits[t]) && (best < 0 || logits[t] > logits[best]))
          best = t;
      if (allowed < 1 || best < 0 || grammar_accept(g, best)) {
        CHECKF(0, "round %d step %d: allowed %d", round, steps, allowed);
        break;
      }
      if (best == EOG)
        ended = 1;
      else
        text[len++] = (char)best;
    }
    json_error_t err;
    json_t *j = json_loadb(text, (size_t)len, JSON_ALLOW_NUL, &err);
    CHECKF(grammar_complete(g) && j && json_is_object(j), "budget %d: %s: %.*s",
           budget, err.text, len, text);
    json_decref(j);
    grammar_free(g);
  }
  grammar_vocab_free(v);
}

/* ---- random generations over fixture and real vocabularies ---- */

/* Every token's bytes and EOG flag, from a model or a tokenizer. */
typedef struct {
  int n;
  char **pieces;
  int *lens;
  uint8_t *eog;
  int32_t byte_tok[256]; /* a token that is exactly that byte, or -1 */
} tokset;

static void tokset_free(tokset *ts) {
  for (int i = 0; ts->pieces && i < ts->n; i++)
    free(ts->pieces[i]);
  free(ts->pieces);
  free(ts->lens);
  free(ts->eog);
  memset(ts, 0, sizeof *ts);
}

static int tokset_alloc(tokset *ts, int n) {
  memset(ts, 0, sizeof *ts);
  ts->n = n;
  ts->pieces = calloc((size_t)n, sizeof *ts->pieces);
  ts->lens = calloc((size_t)n, sizeof *ts->lens);
  ts->eog = calloc((size_t)n, 1);
  memset(ts->byte_tok, -1, sizeof ts->byte_tok);
  return ts->pieces && ts->lens && ts->eog ? 0 : -1;
}

static void tokset_set(tokset *ts, int t, const char *p, int n, int eog) {
  ts->eog[t] = (uint8_t)(eog != 0);
  if (n <= 0)
    return;
  ts->pieces[t] = malloc((size_t)n);
  memcpy(ts->pieces[t], p, (size_t)n);
  ts->lens[t] = n;
  if (n == 1 && ts->byte_tok[(uint8_t)p[0]] < 0)
    ts->byte_tok[(uint8_t)p[0]] = t;
}

static int tokset_from_model(tokset *ts, const eng_model *m) {
  if (tokset_alloc(ts, eng_model_n_vocab(m)))
    return -1;
  char buf[1024];
  for (int t = 0; t < ts->n; t++) {
    int n = eng_token_piece(m, t, 0, buf, sizeof buf);
    tokset_set(ts, t, buf, n, eng_token_is_eog(m, t));
  }
  return 0;
}

static int tokset_from_tok(tokset *ts, const tok_vocab *tv) {
  if (tokset_alloc(ts, tok_n_vocab(tv)))
    return -1;
  char buf[1024];
  for (int t = 0; t < ts->n; t++) {
    int n = tok_piece(tv, t, 0, 0, buf, sizeof buf);
    tokset_set(ts, t, buf, n, tok_is_eog(tv, t));
  }
  return 0;
}

/* A fixture model with the preset's vocabulary and a tiny body. */
static eng_model *load_vocab_fixture(const char *preset) {
  fixture_params p;
  fixture_default_params(&p);
  char path[] = "/tmp/hearth_test_grammar_XXXXXX", err[256];
  int fd = mkstemp(path);
  if (fd < 0)
    return NULL;
  close(fd);
  eng_model *m = NULL;
  if (fixture_preset(preset, &p) == 0) {
    p.n_embd = 64, p.n_layer = 1, p.n_head = 2, p.n_head_kv = 1, p.n_ff = 64;
    p.head_dim = 0;
  }
  if (fixture_set_type(&p, "Q8_0") || fixture_write(&p, path, err, sizeof err))
    fprintf(stderr, "  fixture %s: %s\n", preset, err);
  else if (eng_model_load(path, NULL, &m, err, sizeof err))
    fprintf(stderr, "  load %s: %s\n", path, err);
  remove(path);
  return m;
}

static double now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

typedef struct {
  double us_total, us_max;
  long calls;
} timing;

/* One random generation with max_tokens = budget: uniform random logits,
 * masked, argmax. Checks the output parses as an object within budget. */
static int generate(const tokset *ts, const grammar_vocab *v, float *logits,
                    int budget, uint64_t seed, timing *tm) {
  int nv = ts->n;
  grammar *g = grammar_new_json_object(v);
  size_t cap = 1 << 16, len = 0;
  char *text = malloc(cap);
  uint64_t r = seed * 0x9E3779B97F4A7C15ull + 1;
  int ok = 1, steps = 0, ended = 0;
  for (; steps < budget && !ended; steps++) {
    for (int t = 0; t < nv; t++)
      logits[t] = (float)(rng_next(&r) >> 40) / (float)(1 << 24);
    double t0 = now_us();
    int allowed = grammar_apply(g, logits, nv, budget - steps);
    double dt = now_us() - t0;
    tm->us_total += dt, tm->calls++;
    if (dt > tm->us_max)
      tm->us_max = dt;
    int best = -1, finite = 0;
    for (int t = 0; t < nv; t++)
      if (isfinite(logits[t])) {
        finite++;
        if (best < 0 || logits[t] > logits[best])
          best = t;
      }
    if (allowed < 1 || finite != allowed) {
      CHECKF(0, "seed %llu step %d: allowed %d, finite %d",
             (unsigned long long)seed, steps, allowed, finite);
      ok = 0;
      break;
    }
    if (grammar_accept(g, best)) {
      CHECKF(0, "seed %llu: token %d allowed but refused",
             (unsigned long long)seed, best);
      ok = 0;
      break;
    }
    if (ts->eog[best]) {
      ended = 1;
      break;
    }
    size_t n = (size_t)ts->lens[best];
    if (len + n < cap) {
      memcpy(text + len, ts->pieces[best], n);
      len += n;
    }
  }
  text[len] = 0;
  if (ok) {
    CHECKF(grammar_complete(g), "seed %llu budget %d: incomplete after %d: %s",
           (unsigned long long)seed, budget, steps, text);
    json_error_t e;
    json_t *j = json_loadb(text, len, JSON_ALLOW_NUL, &e);
    CHECKF(j && json_is_object(j), "seed %llu budget %d: %s: %s",
           (unsigned long long)seed, budget, e.text, text);
    ok = j && json_is_object(j) && grammar_complete(g);
    json_decref(j);
  }
  free(text);
  grammar_free(g);
  return ok;
}

/* Random generations with budgets 8, 16, 64, 200 over ts. */
static void random_generations(const char *name, const tokset *ts,
                               const grammar_vocab *v, int seeds) {
  float *logits = malloc((size_t)ts->n * sizeof *logits);
  static const int budgets[] = {8, 16, 64, 200};
  timing tm = {0};
  int fails = 0;
  for (size_t b = 0; b < sizeof budgets / sizeof *budgets; b++)
    for (int s = 1; s <= seeds && fails < 3; s++)
      fails +=
          !generate(ts, v, logits, budgets[b], (uint64_t)s * 7919 + b, &tm);
  printf("  grammar %s (%d tokens): random generations: apply mean %.1f us, "
         "max %.1f us over %ld calls\n",
         name, ts->n, tm.us_total / (double)tm.calls, tm.us_max, tm.calls);
  free(logits);
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* Median apply cost in a few states (printed only): the prefix is fed as
 * single-byte tokens. */
static void time_states(const char *name, const tokset *ts,
                        const grammar_vocab *v) {
  float *logits = calloc((size_t)ts->n, sizeof *logits);
  static const struct {
    const char *name, *prefix;
  } states[] = {{"start", ""},
                {"key", "{\""},
                {"string", "{\"a\":\"hello"},
                {"after-value", "{\"a\":1"},
                {"number", "{\"a\":12"},
                {"value", "{\"a\":"}};
  printf("  grammar_apply on %s (%d tokens):", name, ts->n);
  for (size_t i = 0; i < sizeof states / sizeof *states; i++) {
    grammar *g = grammar_new_json_object(v);
    int fed = 1;
    for (const char *p = states[i].prefix; *p; p++)
      fed &= grammar_accept(g, ts->byte_tok[(uint8_t)*p]) == 0;
    CHECKF(fed, "prefix %s refused", states[i].prefix);
    enum { REPS = 201 };
    double us[REPS];
    for (int r = 0; r < REPS; r++) {
      double t0 = now_us();
      CHECK(grammar_apply(g, logits, ts->n, 100) >= 1);
      us[r] = now_us() - t0;
    }
    qsort(us, REPS, sizeof *us, cmp_double);
    printf(" %s %.1f us;", states[i].name, us[REPS / 2]);
    grammar_free(g);
  }
  printf("\n");
  free(logits);
}

/* A fixture preset's vocabulary, through grammar_vocab_new(model). */
static void fixture_case(const char *preset, int seeds, int timed) {
  eng_model *m = load_vocab_fixture(preset);
  if (!m) {
    CHECKF(0, "no fixture %s", preset);
    return;
  }
  double t0 = now_us();
  grammar_vocab *v = grammar_vocab_new(m);
  double build_ms = (now_us() - t0) / 1e3;
  tokset ts;
  CHECK(v != NULL);
  if (v && tokset_from_model(&ts, m) == 0) {
    printf("  grammar %s: vocabulary built in %.1f ms\n", preset, build_ms);
    random_generations(preset, &ts, v, seeds);
    if (timed)
      time_states(preset, &ts, v);
  }
  tokset_free(&ts);
  grammar_vocab_free(v);
  eng_model_free(m);
}

static void test_random_tiny_spm(void) {
  fixture_case("tiny-llama", 60, 0);
}
static void test_random_tiny_bpe(void) {
  fixture_case("tiny-qwen2", 60, 0);
}
static void test_random_smollm2(void) {
  fixture_case("smollm2-135m", 25, 1);
}
static void test_random_qwen25(void) {
  fixture_case("qwen2.5-0.5b", 10, 1);
}

/* Opens a ../shared tokenizer vocabulary (gunzipping *.gz to a temp file). */
static tok_vocab *open_shared_vocab(const char *name) {
  const char *sh = t_shared_dir();
  if (!sh)
    return NULL;
  char path[512], tmp[64] = "", why[256] = "";
  snprintf(path, sizeof path, "%s/testdata/tokenizers/ggml-vocab-%s.gguf", sh,
           name);
  const char *p = path;
  if (access(path, R_OK) != 0) {
    snprintf(tmp, sizeof tmp, "/tmp/hearth-grammar-%d.gguf", (int)getpid());
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "gzip -dc '%s.gz' > '%s' 2>/dev/null", path, tmp);
    if (system(cmd) != 0) {
      unlink(tmp);
      return NULL;
    }
    p = tmp;
  }
  gguf_file *g = NULL;
  tok_vocab *v = NULL;
  if (gguf_open(p, &g, why, sizeof why) == 0) {
    if (tok_load(g, &v, why, sizeof why))
      fprintf(stderr, "  %s: %s\n", name, why);
    gguf_close(g);
  }
  if (*tmp)
    unlink(tmp);
  return v;
}

/* The real vocabularies of ../shared (llama.cpp's tokenizer test files):
 * SentencePiece with byte fallback, GPT-2/Llama-3/Qwen2 byte-level BPE. */
static void test_real_vocabularies(void) {
  if (!t_shared_dir())
    SKIP("../shared absent (no real vocabularies)");
  static const char *const names[] = {"llama-spm", "phi-3", "gpt-2",
                                      "llama-bpe", "qwen2"};
  int done = 0;
  for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
    tok_vocab *tv = open_shared_vocab(names[i]);
    if (!tv) {
      printf("  grammar: vocabulary %s not found\n", names[i]);
      continue;
    }
    tokset ts;
    if (tokset_from_tok(&ts, tv) == 0) {
      double t0 = now_us();
      grammar_vocab *v = grammar_vocab_new_pieces(
          ts.n, (const char *const *)ts.pieces, ts.lens, ts.eog);
      printf("  grammar %s: vocabulary built in %.1f ms\n", names[i],
             (now_us() - t0) / 1e3);
      CHECK(v != NULL);
      if (v) {
        random_generations(names[i], &ts, v, 8);
        time_states(names[i], &ts, v);
        done++;
      }
      grammar_vocab_free(v);
    }
    tokset_free(&ts);
    tok_free(tv);
  }
  if (!done)
    SKIP("no vocabulary in ../shared/testdata/tokenizers");
}

int main(void) {
  RUN(test_valid_corpus);
  RUN(test_invalid_corpus);
  RUN(test_refusal_position);
  RUN(test_depth_limit);
  RUN(test_whitespace_bound);
  RUN(test_apply_matches_accept);
  RUN(test_utf8_split);
  RUN(test_eog_only_after_complete);
  RUN(test_budget_exact);
  RUN(test_stamp_wrap);
  RUN(test_bad_args);
  RUN(test_differential_mutations);
  RUN(test_random_bytes_budgets);
  RUN(test_random_tiny_spm);
  RUN(test_random_tiny_bpe);
  RUN(test_random_smollm2);
  RUN(test_random_qwen25);
  RUN(test_real_vocabularies);
  T_MAIN_END();
}
