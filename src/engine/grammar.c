/* grammar.c: the "any JSON object" grammar of grammar.h.
 *
 * Three parts:
 *  - a byte-level pushdown automaton of RFC 8259 JSON whose top-level value
 *    is an object (gstate + step()): strings with escapes and paired
 *    \uXXXX surrogates, strict UTF-8 (split across tokens is fine), numbers
 *    without leading zeros, literals, depth <= GRAMMAR_MAX_DEPTH, bounded
 *    whitespace runs;
 *  - close_cost(): the fewest tokens that can still finish the document from
 *    a state, counting one single-byte token per closing byte (a byte with
 *    no single-byte token costs COST_INF);
 *  - the vocabulary: every token's bytes in a preorder trie (one byte per
 *    node, a skip index past each subtree), walked with the automaton so a
 *    prefix shared by many tokens is checked once and a rejected prefix
 *    prunes its whole subtree. Tokens made only of plain string characters
 *    leave a string state unchanged, so inside a string they are allowed in
 *    bulk and only a second, small trie of the other tokens is walked. */
#include "engine/grammar.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

enum {
  GRAMMAR_MAX_DEPTH = 64,  /* nesting levels (top-level object is 1) */
  WS_MAX_BLANKS = 16,      /* spaces/tabs before/after a run's newline */
  WS_INDENT_PER_LEVEL = 4, /* more after the newline, per open level */
  NUM_MAX_INT_DIGITS = 18, /* integer part: fits int64 in every parser */
  NUM_MAX_EXP_DIGITS = 2,  /* exponent: no double overflow */
  TOKEN_MAX_BYTES = 1024,  /* longer tokens are never allowed */
  COST_INF = 1 << 20,      /* a byte no single-byte token produces */
};

/* ---- automaton ------------------------------------------------------------*/

enum {
  M_START,     /* before the top-level '{' */
  M_OBJ_FIRST, /* after '{': key or '}' */
  M_OBJ_KEY,   /* after ',' in an object: key */
  M_COLON,     /* after a key */
  M_VALUE,     /* after ':' or ',' in an array */
  M_ARR_FIRST, /* after '[': value or ']' */
  M_AFTER,     /* after a value inside a container: ',' or the closer */
  M_DONE,      /* top-level object closed */
  M_STR,       /* inside a string */
  M_ESC,       /* after '\' */
  M_HEX,       /* in \uXXXX (sub = digits read, code = value so far) */
  M_SUR_BS,    /* after a high surrogate: '\' of the low one */
  M_SUR_U,     /* after that '\': 'u' */
  M_UTF8,      /* inside a multi-byte UTF-8 sequence */
  M_NUM,       /* inside a number (sub = N_*) */
  M_LIT,       /* inside true/false/null (aux = word, sub = bytes read) */
};

enum { N_MINUS, N_ZERO, N_INT, N_DOT, N_FRAC, N_E, N_ESIGN, N_EXP };

static const char *const LITERALS[3] = {"true", "false", "null"};

typedef struct {
  uint64_t arrays; /* bit i set: the container at depth i+1 is an array */
  uint16_t code;   /* M_HEX: value of the digits read */
  uint8_t mode, depth;
  uint8_t sub, aux;
  uint8_t key;        /* M_STR..M_UTF8: the string is an object key */
  uint8_t low;        /* M_HEX: reading the low surrogate */
  uint16_t blanks;    /* current whitespace run: spaces/tabs (since its
                         newline, if any) */
  uint8_t nl;         /* current whitespace run: '\n' */
  uint8_t cr;         /* current whitespace run: '\r' */
  uint8_t u8n;        /* M_UTF8: continuation bytes still needed */
  uint8_t u8lo, u8hi; /* M_UTF8: range of the next one */
  uint8_t ndig;       /* M_NUM: digits of the integer / exponent part */
} gstate;

static int top_is_array(const gstate *s) {
  return (int)((s->arrays >> (s->depth - 1)) & 1u);
}

static void ws_reset(gstate *s) {
  s->blanks = s->nl = s->cr = 0;
}

/* Whitespace in a structural state: bounded runs. After the run's newline
 * the blanks start again, with room for an indentation of 4 per level. */
static int step_ws(gstate *s, uint8_t b) {
  if (b == ' ' || b == '\t') {
    int max = WS_MAX_BLANKS + (s->nl ? WS_INDENT_PER_LEVEL * s->depth : 0);
    if (s->blanks >= max)
      return -1;
    s->blanks++;
    return 0;
  }
  if (b == '\n') {
    if (s->nl)
      return -1;
    s->nl = 1;
    s->blanks = 0;
    return 0;
  }
  if (b == '\r') {
    if (s->cr || s->nl)
      return -1;
    s->cr = 1;
    return 0;
  }
  return -1;
}

static int is_ws(uint8_t b) {
  return b == ' ' || b == '\t' || b == '\n' || b == '\r';
}

static int push(gstate *s, int array, uint8_t mode) {
  if (s->depth >= GRAMMAR_MAX_DEPTH)
    return -1;
  if (array)
    s->arrays |= (uint64_t)1 << s->depth;
  else
    s->arrays &= ~((uint64_t)1 << s->depth);
  s->depth++;
  s->mode = mode;
  ws_reset(s);
  return 0;
}

static void pop(gstate *s) {
  s->depth--;
  s->mode = s->depth ? M_AFTER : M_DONE;
  ws_reset(s);
}

static void value_end(gstate *s) {
  s->mode = M_AFTER;
  ws_reset(s);
}

/* First byte of a value (M_VALUE / M_ARR_FIRST). */
static int step_value(gstate *s, uint8_t b) {
  switch (b) {
  case '{':
    return push(s, 0, M_OBJ_FIRST);
  case '[':
    return push(s, 1, M_ARR_FIRST);
  case '"':
    s->mode = M_STR;
    s->key = 0;
    return 0;
  case '-':
    s->mode = M_NUM, s->sub = N_MINUS, s->ndig = 0;
    return 0;
  case '0':
    s->mode = M_NUM, s->sub = N_ZERO, s->ndig = 1;
    return 0;
  case 't':
  case 'f':
  case 'n':
    s->mode = M_LIT, s->sub = 1;
    s->aux = b == 't' ? 0 : b == 'f' ? 1 : 2;
    return 0;
  default:
    if (b >= '1' && b <= '9') {
      s->mode = M_NUM, s->sub = N_INT, s->ndig = 1;
      return 0;
    }
    return step_ws(s, b);
  }
}

/* A byte inside a string (no escape or UTF-8 sequence pending). */
static int step_str(gstate *s, uint8_t b) {
  if (b == '"') {
    if (s->key) {
      s->mode = M_COLON;
      ws_reset(s);
    } else
      value_end(s);
    return 0;
  }
  if (b == '\\') {
    s->mode = M_ESC;
    return 0;
  }
  if (b < 0x20)
    return -1;
  if (b < 0x80)
    return 0;
  uint8_t n, lo = 0x80, hi = 0xBF;
  if (b >= 0xC2 && b <= 0xDF)
    n = 1;
  else if (b >= 0xE0 && b <= 0xEF) {
    n = 2;
    if (b == 0xE0)
      lo = 0xA0; /* no overlong forms */
    else if (b == 0xED)
      hi = 0x9F; /* no UTF-16 surrogates */
  } else if (b >= 0xF0 && b <= 0xF4) {
    n = 3;
    if (b == 0xF0)
      lo = 0x90;
    else if (b == 0xF4)
      hi = 0x8F; /* <= U+10FFFF */
  } else
    return -1;
  s->mode = M_UTF8, s->u8n = n, s->u8lo = lo, s->u8hi = hi;
  return 0;
}

static int hexval(uint8_t b) {
  if (b >= '0' && b <= '9')
    return b - '0';
  if (b >= 'a' && b <= 'f')
    return b - 'a' + 10;
  if (b >= 'A' && b <= 'F')
    return b - 'A' + 10;
  return -1;
}

/* One hex digit of \uXXXX; surrogates must come as a high/low pair. */
static int step_hex(gstate *s, uint8_t b) {
  int h = hexval(b);
  if (h < 0)
    return -1;
  uint16_t code = (uint16_t)(s->code * 16 + h);
  int sub = s->sub + 1;
  if (s->low) {
    if ((sub == 1 && code != 0xD) || (sub == 2 && (code < 0xDC || code > 0xDF)))
      return -1;
  } else if (sub == 2 && code >= 0xDC && code <= 0xDF)
    return -1; /* a low surrogate with no high one before it */
  s->code = code, s->sub = (uint8_t)sub;
  if (sub < 4)
    return 0;
  if (!s->low && code >= 0xD800 && code <= 0xDBFF)
    s->mode = M_SUR_BS;
  else
    s->mode = M_STR;
  return 0;
}

static int step_esc(gstate *s, uint8_t b) {
  switch (b) {
  case '"':
  case '\\':
  case '/':
  case 'b':
  case 'f':
  case 'n':
  case 'r':
  case 't':
    s->mode = M_STR;
    return 0;
  case 'u':
    s->mode = M_HEX, s->sub = 0, s->code = 0, s->low = 0;
    return 0;
  default:
    return -1;
  }
}

static int is_digit(uint8_t b) {
  return b >= '0' && b <= '9';
}

static int step(gstate *s, uint8_t b);

/* A byte inside a number; a byte that cannot continue it ends a complete
 * number and is read again as what follows the value. */
static int step_num(gstate *s, uint8_t b) {
  switch (s->sub) {
  case N_MINUS:
    if (!is_digit(b))
      return -1;
    s->sub = b == '0' ? N_ZERO : N_INT, s->ndig = 1;
    return 0;
  case N_ZERO:
  case N_INT:
    if (is_digit(b) && s->sub == N_INT) {
      if (s->ndig >= NUM_MAX_INT_DIGITS)
        return -1;
      s->ndig++;
      return 0;
    }
    if (b == '.') {
      s->sub = N_DOT;
      return 0;
    }
    if (b == 'e' || b == 'E') {
      s->sub = N_E;
      return 0;
    }
    break;
  case N_DOT:
    if (!is_digit(b))
      return -1;
    s->sub = N_FRAC;
    return 0;
  case N_FRAC:
    if (is_digit(b))
      return 0;
    if (b == 'e' || b == 'E') {
      s->sub = N_E;
      return 0;
    }
    break;
  case N_E:
    if (b == '+' || b == '-') {
      s->sub = N_ESIGN;
      return 0;
    }
    /* fall through */
  case N_ESIGN:
    if (!is_digit(b))
      return -1;
    s->sub = N_EXP, s->ndig = 1;
    return 0;
  case N_EXP:
    if (is_digit(b)) {
      if (s->ndig >= NUM_MAX_EXP_DIGITS)
        return -1;
      s->ndig++;
      return 0;
    }
    break;
  }
  if (is_digit(b))
    return -1; /* a leading zero followed by a digit */
  value_end(s);
  return step(s, b);
}

static int step_lit(gstate *s, uint8_t b) {
  const char *w = LITERALS[s->aux];
  if ((uint8_t)w[s->sub] != b)
    return -1;
  s->sub++;
  if (w[s->sub] == 0)
    value_end(s);
  return 0;
}

/* After a value inside a container. */
static int step_after(gstate *s, uint8_t b) {
  int arr = top_is_array(s);
  if (b == ',') {
    s->mode = arr ? M_VALUE : M_OBJ_KEY;
    ws_reset(s);
    return 0;
  }
  if ((b == '}' && !arr) || (b == ']' && arr)) {
    pop(s);
    return 0;
  }
  return step_ws(s, b);
}

/* Advances s over byte b: 0, or -1 when b cannot come next (s is then
 * partly changed: callers step a copy). */
static int step(gstate *s, uint8_t b) {
  switch (s->mode) {
  case M_START:
    return b == '{' ? push(s, 0, M_OBJ_FIRST) : step_ws(s, b);
  case M_OBJ_FIRST:
    if (b == '}') {
      pop(s);
      return 0;
    }
    /* fall through */
  case M_OBJ_KEY:
    if (b == '"') {
      s->mode = M_STR, s->key = 1;
      return 0;
    }
    return step_ws(s, b);
  case M_COLON:
    if (b == ':') {
      s->mode = M_VALUE;
      ws_reset(s);
      return 0;
    }
    return step_ws(s, b);
  case M_ARR_FIRST:
    if (b == ']') {
      pop(s);
      return 0;
    }
    /* fall through */
  case M_VALUE:
    if (is_ws(b))
      return step_ws(s, b);
    ws_reset(s);
    return step_value(s, b);
  case M_AFTER:
    return step_after(s, b);
  case M_STR:
    return step_str(s, b);
  case M_ESC:
    return step_esc(s, b);
  case M_HEX:
    return step_hex(s, b);
  case M_SUR_BS:
    if (b != '\\')
      return -1;
    s->mode = M_SUR_U;
    return 0;
  case M_SUR_U:
    if (b != 'u')
      return -1;
    s->mode = M_HEX, s->sub = 0, s->code = 0, s->low = 1;
    return 0;
  case M_UTF8:
    if (b < s->u8lo || b > s->u8hi)
      return -1;
    s->u8lo = 0x80, s->u8hi = 0xBF;
    if (--s->u8n == 0)
      s->mode = M_STR;
    return 0;
  case M_NUM:
    return step_num(s, b);
  case M_LIT:
    return step_lit(s, b);
  default: /* M_DONE: nothing but end-of-generation */
    return -1;
  }
}

/* ---- vocabulary -----------------------------------------------------------*/

/* A preorder trie: node i holds one byte at depth[i] (1 = first byte of a
 * token), skip[i] is the first node after its subtree, and the tokens whose
 * bytes end at node i are ids[tstart[i] .. tstart[i+1]). */
typedef struct {
  int n;
  uint8_t *byte;
  uint16_t *depth;
  int32_t *skip;
  int32_t *tstart; /* n + 1 entries */
  int32_t *ids;
} gtrie;

enum {
  CLS_PLAIN = 1, /* leaves a plain string state unchanged */
  CLS_EOG = 2,   /* end of generation */
};

/* Per-state closing costs that depend only on the vocabulary. */
typedef struct {
  int byte[256];     /* 1 when a single-byte token makes the byte, else INF */
  int n_single[257]; /* n_single[b]: bytes < b with a single-byte token */
  int digit;         /* any digit */
  int d07;           /* a digit 0-7 (a \u digit that never makes a surrogate) */
  int hex;           /* any hex digit */
  int esc;           /* a one-letter escape */
  int low_sur;       /* "\uDC00": a whole low surrogate escape */
  int low_sur_u;     /* "uDC00": the same after its '\' */
  int vmin_leaf;     /* the cheapest scalar value */
  int vmin;          /* the cheapest value, containers included */
} gcosts;

struct grammar_vocab {
  int n_vocab;
  uint8_t *cls;   /* CLS_* per token */
  char *blob;     /* every token's bytes */
  uint32_t *off;  /* n_vocab + 1 offsets into blob */
  int max_len;    /* longest token in a trie */
  gtrie all;      /* every token with bytes */
  gtrie rest;     /* those that are not CLS_PLAIN */
  int32_t *other; /* ids of the tokens that are not CLS_PLAIN */
  int n_other;
  int32_t *eog; /* ids of the end-of-generation tokens */
  int n_eog;
  gcosts c;
};

struct grammar {
  const grammar_vocab *v;
  gstate s;
  gstate *stack;   /* max_len + 1 states of a trie walk */
  uint16_t *stamp; /* n_vocab: == gen when allowed by the last marking */
  uint16_t gen;
  int n_allowed; /* tokens allowed by the last marking */
  int32_t *list; /* their ids while they fit (cap); grows on demand */
  float *saved;  /* their logits while the rest is masked */
  int n_list, cap;
  int overflow; /* the list could not grow: masking reads the stamps */
};

/* Saturating sum of costs. */
static int cadd(int a, int b) {
  int s = a + b;
  return s > COST_INF ? COST_INF : s;
}

static int cmin(int a, int b) {
  return a < b ? a : b;
}

/* Cost of one byte within [lo, hi]. */
static int crange(const gcosts *c, int lo, int hi) {
  return c->n_single[hi + 1] - c->n_single[lo] > 0 ? 1 : COST_INF;
}

static void costs_init(gcosts *c, const uint8_t *single) {
  c->n_single[0] = 0;
  for (int b = 0; b < 256; b++) {
    c->byte[b] = single[b] ? 1 : COST_INF;
    c->n_single[b + 1] = c->n_single[b] + (single[b] ? 1 : 0);
  }
  const int *k = c->byte;
  c->digit = crange(c, '0', '9');
  c->d07 = crange(c, '0', '7');
  c->hex = cmin(c->digit, cmin(crange(c, 'a', 'f'), crange(c, 'A', 'F')));
  c->esc = COST_INF;
  for (const char *e = "\"\\/bfnrt"; *e; e++)
    c->esc = cmin(c->esc, k[(uint8_t)*e]);
  int cd = cmin(k['D'], k['d']);
  int ccf = cmin(crange(c, 'C', 'F'), crange(c, 'c', 'f'));
  c->low_sur_u = cadd(k['u'], cadd(cadd(cd, ccf), 2 * c->hex));
  c->low_sur = cadd(k['\\'], c->low_sur_u);
  int v = cmin(c->digit, cadd(k['"'], k['"']));
  for (int i = 0; i < 3; i++) {
    int w = 0;
    for (const char *p = LITERALS[i]; *p; p++)
      w = cadd(w, k[(uint8_t)*p]);
    v = cmin(v, w);
  }
  c->vmin_leaf = v;
  c->vmin = cmin(v, cmin(cadd(k['{'], k['}']), cadd(k['['], k[']'])));
}

/* Closers of every open container. */
static int closers(const gcosts *c, const gstate *s) {
  uint64_t m = s->depth >= 64 ? ~(uint64_t)0 : (((uint64_t)1 << s->depth) - 1);
  int arr = __builtin_popcountll(s->arrays & m);
  int obj = s->depth - arr;
  return cadd(obj * (c->byte['}'] > 1 ? COST_INF : 1),
              arr * (c->byte[']'] > 1 ? COST_INF : 1));
}

static int vmin(const gcosts *c, const gstate *s) {
  return s->depth < GRAMMAR_MAX_DEPTH ? c->vmin : c->vmin_leaf;
}

/* What finishing the current string costs: its '"', then for a key ':' and
 * a value, then the closers. */
static int str_close(const gcosts *c, const gstate *s) {
  int n = c->byte['"'];
  if (s->key)
    n = cadd(n, cadd(c->byte[':'], vmin(c, s)));
  return cadd(n, closers(c, s));
}

/* Remaining \uXXXX digits (and, when they can only make a high surrogate,
 * the low surrogate escape after them). */
static int hex_cost(const gcosts *c, const gstate *s) {
  int left = 4 - s->sub, n = 0;
  if (s->low) {
    for (int p = s->sub; p < 4; p++)
      n = cadd(n, p == 0   ? cmin(c->byte['D'], c->byte['d'])
                  : p == 1 ? cmin(crange(c, 'C', 'F'), crange(c, 'c', 'f'))
                           : c->hex);
    return n;
  }
  n = left * (c->d07 > 1 ? COST_INF : 1);
  int forced = (s->sub == 2 && s->code >= 0xD8 && s->code <= 0xDB) ||
               (s->sub == 3 && s->code >= 0xD80 && s->code <= 0xDBF);
  return forced ? cadd(n, c->low_sur) : n;
}

/* The fewest tokens that can finish the document from s (COST_INF: none
 * made of single-byte tokens). */
static int close_cost(const gcosts *c, const gstate *s) {
  switch (s->mode) {
  case M_START:
    return cadd(c->byte['{'], c->byte['}']);
  case M_DONE:
    return 0;
  case M_OBJ_FIRST:
  case M_ARR_FIRST:
  case M_AFTER:
    return closers(c, s);
  case M_OBJ_KEY:
    return cadd(cadd(2 * c->byte['"'], c->byte[':']),
                cadd(vmin(c, s), closers(c, s)));
  case M_COLON:
    return cadd(c->byte[':'], cadd(vmin(c, s), closers(c, s)));
  case M_VALUE:
    return cadd(vmin(c, s), closers(c, s));
  case M_STR:
    return str_close(c, s);
  case M_ESC:
    return cadd(c->esc, str_close(c, s));
  case M_HEX:
    return cadd(hex_cost(c, s), str_close(c, s));
  case M_SUR_BS:
    return cadd(c->low_sur, str_close(c, s));
  case M_SUR_U:
    return cadd(c->low_sur_u, str_close(c, s));
  case M_UTF8: {
    int n = cadd(crange(c, s->u8lo, s->u8hi),
                 (s->u8n - 1) * (crange(c, 0x80, 0xBF) > 1 ? COST_INF : 1));
    return cadd(n, str_close(c, s));
  }
  case M_NUM: {
    int need = s->sub == N_MINUS || s->sub == N_DOT || s->sub == N_E ||
               s->sub == N_ESIGN;
    return cadd(need ? c->digit : 0, closers(c, s));
  }
  case M_LIT: {
    int n = 0;
    for (const char *p = LITERALS[s->aux] + s->sub; *p; p++)
      n = cadd(n, c->byte[(uint8_t)*p]);
    return cadd(n, closers(c, s));
  }
  }
  return COST_INF;
}

/* 1 when the bytes only ever leave a plain string state unchanged:
 * printable ASCII but '"' and '\', or whole well-formed UTF-8 sequences. */
static int is_plain(const uint8_t *p, int n) {
  if (n <= 0)
    return 0;
  gstate s;
  memset(&s, 0, sizeof s);
  s.mode = M_STR;
  for (int i = 0; i < n; i++) {
    if (p[i] == '"' || p[i] == '\\' || step(&s, p[i]))
      return 0;
  }
  return s.mode == M_STR;
}

typedef struct {
  const uint8_t *p;
  int len;
  int32_t id;
} tok_ref;

static int tok_ref_cmp(const void *a, const void *b) {
  const tok_ref *x = a, *y = b;
  int n = x->len < y->len ? x->len : y->len;
  int c = memcmp(x->p, y->p, (size_t)n);
  if (c)
    return c;
  if (x->len != y->len)
    return x->len < y->len ? -1 : 1;
  return x->id < y->id ? -1 : x->id > y->id;
}

static void trie_free(gtrie *t) {
  free(t->byte);
  free(t->depth);
  free(t->skip);
  free(t->tstart);
  free(t->ids);
  memset(t, 0, sizeof *t);
}

/* Builds a trie over refs[0..n), which must be sorted by tok_ref_cmp.
 * 0, or -1 on OOM. */
static int trie_build(gtrie *t, const tok_ref *refs, int n) {
  memset(t, 0, sizeof *t);
  size_t cap = 1;
  for (int i = 0; i < n; i++)
    cap += (size_t)refs[i].len;
  t->byte = malloc(cap);
  t->depth = malloc(cap * sizeof *t->depth);
  t->skip = malloc(cap * sizeof *t->skip);
  t->tstart = calloc(cap + 1, sizeof *t->tstart);
  t->ids = malloc((size_t)(n ? n : 1) * sizeof *t->ids);
  int32_t *path = malloc((TOKEN_MAX_BYTES + 1) * sizeof *path);
  if (!t->byte || !t->depth || !t->skip || !t->tstart || !t->ids || !path) {
    free(path);
    trie_free(t);
    return -1;
  }
  int nodes = 0, top = 0; /* path[1..top]: nodes of the current prefix */
  for (int i = 0; i < n; i++) {
    const tok_ref *r = &refs[i];
    int common = 0;
    if (i > 0) {
      const tok_ref *q = &refs[i - 1];
      while (common < q->len && common < r->len && q->p[common] == r->p[common])
        common++;
    }
    for (; top > common; top--)
      t->skip[path[top]] = nodes;
    for (int d = common; d < r->len; d++) {
      t->byte[nodes] = r->p[d];
      t->depth[nodes] = (uint16_t)(d + 1);
      path[++top] = nodes++;
    }
    t->ids[i] = r->id;
    t->tstart[path[top] + 1]++; /* counted now, summed below */
  }
  for (; top > 0; top--)
    t->skip[path[top]] = nodes;
  free(path);
  for (int i = 0; i < nodes; i++)
    t->tstart[i + 1] += t->tstart[i];
  t->n = nodes;
  return 0;
}

/* Sets token t's bytes p[0..n) (appended to v->blob) and class; n == 0:
 * never allowed. 0 or -1 on OOM. */
static int set_piece(grammar_vocab *v, size_t *cap, int t, const char *p, int n,
                     int eog) {
  size_t used = v->off[t];
  v->off[t + 1] = (uint32_t)used;
  if (eog) {
    v->cls[t] = CLS_EOG;
    return 0;
  }
  if (n <= 0 || n > TOKEN_MAX_BYTES)
    return 0;
  if (used + (size_t)n > *cap) {
    size_t nc = *cap;
    while (used + (size_t)n > nc)
      nc *= 2;
    char *nb = realloc(v->blob, nc);
    if (!nb)
      return -1;
    v->blob = nb, *cap = nc;
  }
  memcpy(v->blob + used, p, (size_t)n);
  v->off[t + 1] = (uint32_t)(used + (size_t)n);
  if (is_plain((const uint8_t *)p, n))
    v->cls[t] = CLS_PLAIN;
  return 0;
}

/* A vocabulary of n tokens with no bytes yet (v->off[0] set). */
static grammar_vocab *vocab_alloc(int n, size_t *cap) {
  grammar_vocab *v = calloc(1, sizeof *v);
  if (!v)
    return NULL;
  v->n_vocab = n;
  *cap = 1 << 16;
  v->cls = calloc((size_t)(n ? n : 1), 1);
  v->off = calloc((size_t)n + 1, sizeof *v->off);
  v->blob = malloc(*cap);
  if (!v->cls || !v->off || !v->blob) {
    grammar_vocab_free(v);
    return NULL;
  }
  return v;
}

static int tok_len(const grammar_vocab *v, int t) {
  return (int)(v->off[t + 1] - v->off[t]);
}

/* Lists the tokens that are not CLS_PLAIN, and the EOG ones. 0 or -1. */
static int id_lists(grammar_vocab *v) {
  size_t n = (size_t)(v->n_vocab ? v->n_vocab : 1);
  v->other = malloc(n * sizeof *v->other);
  v->eog = malloc(n * sizeof *v->eog);
  if (!v->other || !v->eog)
    return -1;
  for (int t = 0; t < v->n_vocab; t++) {
    if (!(v->cls[t] & CLS_PLAIN))
      v->other[v->n_other++] = t;
    if (v->cls[t] & CLS_EOG)
      v->eog[v->n_eog++] = t;
  }
  return 0;
}

/* Builds both tries, the id lists and the byte costs. 0 or -1 on OOM. */
static int build_tries(grammar_vocab *v) {
  tok_ref *refs = malloc((size_t)(v->n_vocab ? v->n_vocab : 1) * sizeof *refs);
  if (!refs)
    return -1;
  uint8_t single[256] = {0};
  int n = 0;
  for (int t = 0; t < v->n_vocab; t++) {
    int len = tok_len(v, t);
    if (len == 0)
      continue;
    const uint8_t *p = (const uint8_t *)v->blob + v->off[t];
    if (len == 1)
      single[p[0]] = 1;
    if (len > v->max_len)
      v->max_len = len;
    refs[n++] = (tok_ref){p, len, t};
  }
  costs_init(&v->c, single);
  if (id_lists(v)) {
    free(refs);
    return -1;
  }
  qsort(refs, (size_t)n, sizeof *refs, tok_ref_cmp);
  int rc = trie_build(&v->all, refs, n);
  int k = 0; /* the subset stays sorted */
  for (int i = 0; i < n; i++)
    if (!(v->cls[refs[i].id] & CLS_PLAIN))
      refs[k++] = refs[i];
  if (rc == 0)
    rc = trie_build(&v->rest, refs, k);
  free(refs);
  return rc;
}

/* Builds v's tries: v, or NULL (v freed) on OOM. */
static grammar_vocab *vocab_finish(grammar_vocab *v) {
  if (build_tries(v)) {
    grammar_vocab_free(v);
    return NULL;
  }
  return v;
}

grammar_vocab *grammar_vocab_new(const eng_model *m) {
  if (!m)
    return NULL;
  size_t cap;
  grammar_vocab *v = vocab_alloc(eng_model_n_vocab(m), &cap);
  if (!v)
    return NULL;
  char buf[TOKEN_MAX_BYTES];
  for (int t = 0; t < v->n_vocab; t++) {
    int eog = eng_token_is_eog(m, t);
    /* control and unknown tokens have no bytes here: never allowed */
    int n = eog ? 0 : eng_token_piece(m, t, 0, buf, (int)sizeof buf);
    if (set_piece(v, &cap, t, buf, n > 0 ? n : 0, eog)) {
      grammar_vocab_free(v);
      return NULL;
    }
  }
  return vocab_finish(v);
}

grammar_vocab *grammar_vocab_new_pieces(int n, const char *const *pieces,
                                        const int *lens, const uint8_t *eog) {
  if (n <= 0 || !pieces || !lens)
    return NULL;
  size_t cap;
  grammar_vocab *v = vocab_alloc(n, &cap);
  if (!v)
    return NULL;
  for (int t = 0; t < n; t++) {
    int e = eog && eog[t];
    if (set_piece(v, &cap, t, pieces[t], pieces[t] ? lens[t] : 0, e)) {
      grammar_vocab_free(v);
      return NULL;
    }
  }
  return vocab_finish(v);
}

void grammar_vocab_free(grammar_vocab *v) {
  if (!v)
    return;
  trie_free(&v->all);
  trie_free(&v->rest);
  free(v->other);
  free(v->eog);
  free(v->cls);
  free(v->blob);
  free(v->off);
  free(v);
}

/* ---- grammar --------------------------------------------------------------*/

grammar *grammar_new_json_object(const grammar_vocab *v) {
  if (!v)
    return NULL;
  grammar *g = calloc(1, sizeof *g);
  if (!g)
    return NULL;
  size_t n = (size_t)(v->n_vocab ? v->n_vocab : 1);
  g->v = v;
  g->s.mode = M_START;
  g->stack = malloc(((size_t)v->max_len + 1) * sizeof *g->stack);
  g->stamp = calloc(n, sizeof *g->stamp);
  g->cap = 256;
  g->list = malloc((size_t)g->cap * sizeof *g->list);
  g->saved = malloc((size_t)g->cap * sizeof *g->saved);
  if (!g->stack || !g->stamp || !g->list || !g->saved) {
    grammar_free(g);
    return NULL;
  }
  return g;
}

void grammar_free(grammar *g) {
  if (!g)
    return;
  free(g->stack);
  free(g->stamp);
  free(g->list);
  free(g->saved);
  free(g);
}

/* Makes room for n more ids in the list; 0, or -1 when it cannot grow. */
static int list_room(grammar *g, int n) {
  if (g->n_list + n <= g->cap)
    return 0;
  int cap = g->cap;
  while (g->n_list + n > cap)
    cap *= 2;
  int32_t *l = realloc(g->list, (size_t)cap * sizeof *l);
  if (!l)
    return -1;
  g->list = l;
  float *sv = realloc(g->saved, (size_t)cap * sizeof *sv);
  if (!sv)
    return -1;
  g->saved = sv, g->cap = cap;
  return 0;
}

/* Allows ids[0..n): stamped, and listed while the list can hold them. */
static void allow(grammar *g, const int32_t *ids, int n) {
  for (int k = 0; k < n; k++)
    g->stamp[ids[k]] = g->gen;
  g->n_allowed += n;
  if (g->overflow || list_room(g, n)) {
    g->overflow = 1;
    return;
  }
  memcpy(g->list + g->n_list, ids, (size_t)n * sizeof *ids);
  g->n_list += n;
}

/* Walks trie t from g's state, allowing the tokens the grammar accepts
 * whose closing cost is <= lim; *min_cost gets the least closing cost of
 * any token the grammar accepts. */
static void walk(grammar *g, const gtrie *t, int lim, int *min_cost) {
  const gcosts *c = &g->v->c;
  gstate *st = g->stack;
  st[0] = g->s;
  for (int i = 0; i < t->n;) {
    gstate s = st[t->depth[i] - 1];
    if (step(&s, t->byte[i])) {
      i = t->skip[i];
      continue;
    }
    st[t->depth[i]] = s;
    int a = t->tstart[i], b = t->tstart[i + 1];
    if (b > a) {
      int cost = close_cost(c, &s);
      if (cost < *min_cost)
        *min_cost = cost;
      if (cost <= lim)
        allow(g, t->ids + a, b - a);
    }
    i++;
  }
}

/* Lists the allowed tokens with closing cost <= lim (g->list, g->stamp);
 * returns 1 when every CLS_PLAIN token is allowed too (inside a string),
 * without listing them. */
static int mark(grammar *g, int lim, int *min_cost) {
  const grammar_vocab *v = g->v;
  if (++g->gen == 0) { /* wrapped: old stamps could match again */
    memset(g->stamp, 0, (size_t)v->n_vocab * sizeof *g->stamp);
    g->gen = 1;
  }
  g->n_list = g->n_allowed = g->overflow = 0;
  if (g->s.mode == M_DONE) {
    *min_cost = 0;
    allow(g, v->eog, v->n_eog);
    return 0;
  }
  if (g->s.mode != M_STR) {
    walk(g, &v->all, lim, min_cost);
    return 0;
  }
  /* plain tokens leave the state as it is: one cost for all of them */
  int cost = close_cost(&v->c, &g->s);
  *min_cost = cost;
  walk(g, &v->rest, lim, min_cost);
  return cost <= lim;
}

/* Masks every token but the allowed ones; returns how many stay. */
static int mask_listed(grammar *g, float *logits, int n_vocab) {
  int k = 0;
  if (g->overflow) { /* one pass over the stamps */
    int nv = n_vocab < g->v->n_vocab ? n_vocab : g->v->n_vocab;
    for (int t = 0; t < nv; t++) {
      if (g->stamp[t] == g->gen)
        k++;
      else
        logits[t] = -INFINITY;
    }
    for (int t = nv; t < n_vocab; t++)
      logits[t] = -INFINITY;
    return k;
  }
  for (int i = 0; i < g->n_list; i++)
    if (g->list[i] < n_vocab) {
      g->list[k] = g->list[i];
      g->saved[k++] = logits[g->list[i]];
    }
  for (int t = 0; t < n_vocab; t++)
    logits[t] = -INFINITY;
  for (int i = 0; i < k; i++)
    logits[g->list[i]] = g->saved[i];
  return k;
}

/* Masks the tokens that are neither plain nor listed; returns how many
 * stay. */
static int mask_unlisted(grammar *g, float *logits, int n_vocab) {
  const grammar_vocab *v = g->v;
  int masked = 0;
  for (int i = 0; i < v->n_other; i++) {
    int32_t t = v->other[i];
    if (t < n_vocab && g->stamp[t] != g->gen)
      logits[t] = -INFINITY, masked++;
  }
  int nv = n_vocab < v->n_vocab ? n_vocab : v->n_vocab;
  for (int t = nv; t < n_vocab; t++)
    logits[t] = -INFINITY, masked++;
  return n_vocab - masked;
}

int grammar_apply(grammar *g, float *logits, int n_vocab, int budget) {
  if (!g || !logits || n_vocab <= 0)
    return 0;
  int lim = budget > 0 ? budget - 1 : INT_MAX, min_cost = COST_INF + 1;
  int plain = mark(g, lim, &min_cost);
  if (!plain && g->n_allowed == 0 && budget > 0 && min_cost <= COST_INF)
    plain = mark(g, min_cost, &min_cost); /* too late: the nearest close */
  return plain ? mask_unlisted(g, logits, n_vocab)
               : mask_listed(g, logits, n_vocab);
}

int grammar_accept(grammar *g, int32_t tok) {
  if (!g || tok < 0 || tok >= g->v->n_vocab)
    return -1;
  const grammar_vocab *v = g->v;
  if (v->cls[tok] & CLS_EOG)
    return g->s.mode == M_DONE ? 0 : -1;
  int len = tok_len(v, tok);
  if (len == 0)
    return -1;
  gstate s = g->s;
  const uint8_t *p = (const uint8_t *)v->blob + v->off[tok];
  for (int i = 0; i < len; i++)
    if (step(&s, p[i]))
      return -1;
  g->s = s;
  return 0;
}

int grammar_complete(const grammar *g) {
  return g && g->s.mode == M_DONE;
}
