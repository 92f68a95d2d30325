/* jinja.c: lexer, parser and tree-walking evaluator for the Jinja2 subset
 * used by chat templates (see jinja.h). Values are jansson json_t; NULL is
 * Jinja's Undefined. Macros, namespaces and the loop object are JSON objects
 * carrying a hidden marker key.
 *
 * Knows nothing about HTTP, models or tokenizers. */
#include "engine/jinja.h"

#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MACRO_KEY "\x01jinja_macro"
#define NS_KEY "\x01jinja_namespace"
#define GLOBAL_KEY "\x01jinja_global"
#define LOOP_KEY "\x01jinja_loop"
/* Dict keys that are integers ({512: 128}) are stored as "\x02512". */
#define INT_KEY '\x02'
#define PARSE_MAX_DEPTH 200

/* ------------------------------------------------------------------ */
/* Tokens                                                              */

enum tk {
  TK_EOF,
  TK_TEXT,
  TK_VAR_BEGIN,
  TK_VAR_END,
  TK_BLOCK_BEGIN,
  TK_BLOCK_END,
  TK_NAME,
  TK_STR,
  TK_INT,
  TK_FLOAT,
  TK_OP,
};

typedef struct {
  int kind, line;
  char *s; /* text, name, string value or operator */
  size_t len;
  long long i;
  double f;
} token;

typedef struct {
  token *v;
  size_t n, cap;
} toklist;

typedef struct {
  const char *src;
  size_t len, pos;
  int line;
  int line_starting;
  toklist *out;
  jinja_error *err;
} lexer;

static void set_err(jinja_error *e, int line, const char *fmt, ...) {
  va_list ap;
  e->line = line;
  e->raised = 0;
  va_start(ap, fmt);
  char m[400];
  vsnprintf(m, sizeof m, fmt, ap);
  va_end(ap);
  if (line > 0)
    snprintf(e->msg, sizeof e->msg, "line %d: %s", line, m);
  else
    snprintf(e->msg, sizeof e->msg, "%s", m);
}

static int push_tok(lexer *L, int kind, const char *s, size_t len) {
  toklist *t = L->out;
  if (t->n == t->cap) {
    size_t nc = t->cap ? t->cap * 2 : 256;
    token *nv = realloc(t->v, nc * sizeof *nv);
    if (!nv)
      return -1;
    t->v = nv;
    t->cap = nc;
  }
  token *k = &t->v[t->n++];
  memset(k, 0, sizeof *k);
  k->kind = kind;
  k->line = L->line;
  if (s) {
    k->s = malloc(len + 1);
    if (!k->s)
      return -1;
    memcpy(k->s, s, len);
    k->s[len] = 0;
    k->len = len;
  }
  return 0;
}

static void advance(lexer *L, size_t to) {
  for (size_t i = L->pos; i < to && i < L->len; i++)
    if (L->src[i] == '\n')
      L->line++;
  L->pos = to;
}

static int is_ws(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' ||
         c == '\v';
}

/* Finds the next "{{", "{%" or "{#" at or after from; len when none. */
static size_t find_tag(const lexer *L, size_t from) {
  for (size_t i = from; i + 1 < L->len; i++)
    if (L->src[i] == '{' &&
        (L->src[i + 1] == '{' || L->src[i + 1] == '%' || L->src[i + 1] == '#'))
      return i;
  return L->len;
}

/* Emits the text before a tag at p, applying '-' and lstrip_blocks. */
static int emit_text(lexer *L, size_t p, int kind) {
  size_t a = L->pos, b = p;
  char mod = p + 2 < L->len ? L->src[p + 2] : 0;
  if (p < L->len && mod == '-') {
    while (b > a && is_ws(L->src[b - 1]))
      b--;
  } else if (p < L->len && kind != '{' && mod != '+') {
    size_t l = b;
    while (l > a && L->src[l - 1] != '\n')
      l--;
    int ws = 1;
    for (size_t i = l; i < b; i++)
      if (L->src[i] != ' ' && L->src[i] != '\t')
        ws = 0;
    if (ws && (l > a || L->line_starting))
      b = l;
  }
  if (b > a && push_tok(L, TK_TEXT, L->src + a, b - a))
    return -1;
  return 0;
}

/* After a tag closer ending at e (exclusive): trims per '-', trim_blocks. */
static void after_close(lexer *L, size_t e, char mod, int block) {
  size_t q = e;
  if (mod == '-') {
    while (q < L->len && is_ws(L->src[q]))
      q++;
  } else if (block && mod != '+') {
    if (q < L->len && L->src[q] == '\n')
      q++;
    else if (q + 1 < L->len && L->src[q] == '\r' && L->src[q + 1] == '\n')
      q += 2;
  }
  L->line_starting = q > 0 && L->src[q - 1] == '\n';
  advance(L, q);
}

/* Writes code point cp as UTF-8 at o; returns the byte count. */
static size_t utf8_put(char *o, unsigned long cp) {
  if (cp < 0x80) {
    o[0] = (char)cp;
    return 1;
  }
  if (cp < 0x800) {
    o[0] = (char)(0xC0 | (cp >> 6));
    o[1] = (char)(0x80 | (cp & 0x3F));
    return 2;
  }
  if (cp < 0x10000) {
    o[0] = (char)(0xE0 | (cp >> 12));
    o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[2] = (char)(0x80 | (cp & 0x3F));
    return 3;
  }
  o[0] = (char)(0xF0 | (cp >> 18));
  o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
  o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
  o[3] = (char)(0x80 | (cp & 0x3F));
  return 4;
}

static int lex_string(lexer *L) {
  char qc = L->src[L->pos];
  size_t i = L->pos + 1;
  char *buf = malloc(L->len - L->pos + 1);
  size_t n = 0;
  if (!buf)
    return -1;
  while (i < L->len && L->src[i] != qc) {
    char c = L->src[i];
    if (c == '\\' && i + 1 < L->len) {
      char d = L->src[++i];
      switch (d) {
      case 'n':
        c = '\n';
        break;
      case 't':
        c = '\t';
        break;
      case 'r':
        c = '\r';
        break;
      case '0':
        c = '\0';
        break;
      case 'b':
        c = '\b';
        break;
      case 'f':
        c = '\f';
        break;
      case '\\':
      case '\'':
      case '"':
        c = d;
        break;
      case '\n':
        i++;
        continue;
      case 'x':
      case 'u':
      case 'U': {
        int digits = d == 'x' ? 2 : d == 'u' ? 4 : 8;
        unsigned long cp = 0;
        int k = 0;
        for (; k < digits && i + 1 < L->len &&
               isxdigit((unsigned char)L->src[i + 1]);
             k++)
          cp = cp * 16 + (unsigned long)(isdigit((unsigned char)L->src[++i])
                                             ? L->src[i] - '0'
                                             : (tolower(L->src[i]) - 'a' + 10));
        if (k < digits || cp > 0x10FFFF) {
          free(buf);
          set_err(L->err, L->line, "bad \\%c escape in string literal", d);
          return -1;
        }
        n += utf8_put(buf + n, cp);
        i++;
        continue;
      }
      default:
        buf[n++] = '\\';
        c = d;
        break;
      }
    }
    buf[n++] = c;
    i++;
  }
  if (i >= L->len) {
    free(buf);
    set_err(L->err, L->line, "unterminated string literal");
    return -1;
  }
  int rc = push_tok(L, TK_STR, buf, n);
  free(buf);
  advance(L, i + 1);
  return rc;
}

static int lex_number(lexer *L) {
  size_t i = L->pos;
  char num[64];
  size_t n = 0;
  int isf = 0;
  while (i < L->len &&
         (isdigit((unsigned char)L->src[i]) || L->src[i] == '_')) {
    if (L->src[i] != '_' && n < 60)
      num[n++] = L->src[i];
    i++;
  }
  if (i + 1 < L->len && L->src[i] == '.' &&
      isdigit((unsigned char)L->src[i + 1])) {
    isf = 1;
    num[n++] = '.';
    i++;
    while (i < L->len && isdigit((unsigned char)L->src[i]) && n < 60)
      num[n++] = L->src[i++];
  }
  if (i < L->len && (L->src[i] == 'e' || L->src[i] == 'E')) {
    size_t j = i + 1;
    if (j < L->len && (L->src[j] == '+' || L->src[j] == '-'))
      j++;
    if (j < L->len && isdigit((unsigned char)L->src[j])) {
      isf = 1;
      while (i < j && n < 60)
        num[n++] = L->src[i++];
      while (i < L->len && isdigit((unsigned char)L->src[i]) && n < 60)
        num[n++] = L->src[i++];
    }
  }
  num[n] = 0;
  if (push_tok(L, isf ? TK_FLOAT : TK_INT, NULL, 0))
    return -1;
  token *t = &L->out->v[L->out->n - 1];
  if (isf)
    t->f = strtod(num, NULL);
  else
    t->i = strtoll(num, NULL, 10);
  advance(L, i);
  return 0;
}

static const char *OPS[] = {"**", "//", "==", "!=", "<=", ">=", "+", "-", "*",
                            "/",  "%",  "~",  "<",  ">",  "=",  "(", ")", "[",
                            "]",  "{",  "}",  ".",  ",",  ":",  "|"};

/* Lexes expression tokens inside a {{ }} or {% %} tag until its closer. */
static int lex_tag_body(lexer *L, int block) {
  const char close = block ? '%' : '}';
  for (;;) {
    while (L->pos < L->len && is_ws(L->src[L->pos]))
      advance(L, L->pos + 1);
    if (L->pos >= L->len) {
      set_err(L->err, L->line, "unclosed %s tag", block ? "{%" : "{{");
      return -1;
    }
    const char *s = L->src + L->pos;
    size_t rem = L->len - L->pos;
    char mod = 0;
    size_t clen = 0;
    if (rem >= 2 && s[0] == close && s[1] == '}')
      clen = 2;
    else if (rem >= 3 && (s[0] == '-' || s[0] == '+') && s[1] == close &&
             s[2] == '}')
      mod = s[0], clen = 3;
    if (clen) {
      if (push_tok(L, block ? TK_BLOCK_END : TK_VAR_END, NULL, 0))
        return -1;
      after_close(L, L->pos + clen, mod, block);
      return 0;
    }
    char c = s[0];
    if (c == '"' || c == '\'') {
      if (lex_string(L))
        return -1;
    } else if (isdigit((unsigned char)c)) {
      if (lex_number(L))
        return -1;
    } else if (isalpha((unsigned char)c) || c == '_') {
      size_t n = 1;
      while (n < rem && (isalnum((unsigned char)s[n]) || s[n] == '_'))
        n++;
      if (push_tok(L, TK_NAME, s, n))
        return -1;
      advance(L, L->pos + n);
    } else {
      size_t k;
      for (k = 0; k < sizeof OPS / sizeof *OPS; k++) {
        size_t ol = strlen(OPS[k]);
        if (ol <= rem && memcmp(s, OPS[k], ol) == 0)
          break;
      }
      if (k == sizeof OPS / sizeof *OPS) {
        set_err(L->err, L->line, "unexpected character '%c'", c);
        return -1;
      }
      if (push_tok(L, TK_OP, OPS[k], strlen(OPS[k])))
        return -1;
      advance(L, L->pos + strlen(OPS[k]));
    }
  }
}

/* {% raw %}...{% endraw %}: returns 1 when handled at tag p. */
static int lex_raw(lexer *L, size_t p, int *rc) {
  size_t i = p + 2;
  if (i < L->len && (L->src[i] == '-' || L->src[i] == '+'))
    i++;
  while (i < L->len && is_ws(L->src[i]))
    i++;
  if (L->len - i < 3 || memcmp(L->src + i, "raw", 3) != 0)
    return 0;
  i += 3;
  while (i < L->len && is_ws(L->src[i]))
    i++;
  if (i < L->len && (L->src[i] == '-' || L->src[i] == '+'))
    i++;
  if (L->len - i < 2 || memcmp(L->src + i, "%}", 2) != 0)
    return 0;
  size_t body = i + 2;
  for (size_t j = body; j + 1 < L->len; j++) {
    if (L->src[j] != '{' || L->src[j + 1] != '%')
      continue;
    size_t k = j + 2;
    if (k < L->len && (L->src[k] == '-' || L->src[k] == '+'))
      k++;
    while (k < L->len && is_ws(L->src[k]))
      k++;
    if (L->len - k < 6 || memcmp(L->src + k, "endraw", 6) != 0)
      continue;
    k += 6;
    while (k < L->len && is_ws(L->src[k]))
      k++;
    char mod = 0;
    if (k < L->len && (L->src[k] == '-' || L->src[k] == '+'))
      mod = L->src[k++];
    if (L->len - k < 2 || memcmp(L->src + k, "%}", 2) != 0)
      continue;
    size_t be = j;
    if (L->src[j + 2] == '-')
      while (be > body && is_ws(L->src[be - 1]))
        be--;
    *rc = (be > body) ? push_tok(L, TK_TEXT, L->src + body, be - body) : 0;
    after_close(L, k + 2, mod, 1);
    return 1;
  }
  set_err(L->err, L->line, "missing {%% endraw %%}");
  *rc = -1;
  return 1;
}

static int lex_all(const char *src, size_t len, toklist *out,
                   jinja_error *err) {
  lexer L = {src, len, 0, 1, 1, out, err};
  while (L.pos < L.len) {
    size_t p = find_tag(&L, L.pos);
    int kind = p < len ? src[p + 1] : 0;
    if (emit_text(&L, p, kind))
      return -1;
    advance(&L, p);
    if (p >= len)
      break;
    if (kind == '#') {
      const char *e = NULL;
      for (size_t i = p + 2; i + 1 < len; i++)
        if (src[i] == '#' && src[i + 1] == '}') {
          e = src + i;
          break;
        }
      if (!e) {
        set_err(err, L.line, "unclosed comment");
        return -1;
      }
      char mod =
          (e > src + p + 2 && (e[-1] == '-' || e[-1] == '+')) ? e[-1] : 0;
      after_close(&L, (size_t)(e - src) + 2, mod, 1);
      continue;
    }
    if (kind == '%') {
      int rc;
      if (lex_raw(&L, p, &rc)) {
        if (rc)
          return -1;
        continue;
      }
    }
    if (push_tok(&L, kind == '%' ? TK_BLOCK_BEGIN : TK_VAR_BEGIN, NULL, 0))
      return -1;
    size_t q = p + 2;
    if (q < len && (src[q] == '-' || src[q] == '+'))
      q++;
    advance(&L, q);
    if (lex_tag_body(&L, kind == '%'))
      return -1;
  }
  return push_tok(&L, TK_EOF, NULL, 0);
}

/* ------------------------------------------------------------------ */
/* AST                                                                 */

enum nk {
  /* expressions */
  N_LIT,
  N_NAME,
  N_ATTR,
  N_ITEM,
  N_SLICE,
  N_CALL,
  N_FILTER,
  N_TEST,
  N_NEG,
  N_POS,
  N_NOT,
  N_AND,
  N_OR,
  N_BIN,
  N_CHAIN,
  N_COND,
  N_LIST,
  N_TUPLE,
  N_DICT,
  /* statements */
  N_BODY,
  N_TEXT,
  N_OUT,
  N_IF,
  N_FOR,
  N_SET,
  N_SETBLOCK,
  N_MACRO,
  N_BREAK,
  N_CONTINUE,
  N_DO,
};

typedef struct node node;
struct node {
  int kind, line;
  char *s;     /* name, operator, text */
  size_t slen; /* text length */
  json_t *lit; /* N_LIT */
  node *a, *b, *c, *d;
  node **v;     /* children: args, items, body statements */
  char **names; /* parallel to v: kwarg names / param names (NULL = none) */
  size_t n, cap;
  int neg; /* N_TEST: "is not" */
};

struct jinja_template {
  node *root;
};

static node *new_node(int kind, int line) {
  node *n = calloc(1, sizeof *n);
  if (n) {
    n->kind = kind;
    n->line = line;
  }
  return n;
}

static void free_node(node *n) {
  if (!n)
    return;
  free(n->s);
  if (n->lit)
    json_decref(n->lit);
  free_node(n->a);
  free_node(n->b);
  free_node(n->c);
  free_node(n->d);
  for (size_t i = 0; i < n->n; i++) {
    free_node(n->v[i]);
    if (n->names)
      free(n->names[i]);
  }
  free(n->v);
  free(n->names);
  free(n);
}

static int add_child(node *p, node *c, const char *name) {
  if (p->n == p->cap) {
    size_t nc = p->cap ? p->cap * 2 : 4;
    node **nv = realloc(p->v, nc * sizeof *nv);
    if (!nv)
      return -1;
    p->v = nv;
    char **nn = realloc(p->names, nc * sizeof *nn);
    if (!nn)
      return -1;
    p->names = nn;
    p->cap = nc;
  }
  p->v[p->n] = c;
  p->names[p->n] = name ? strdup(name) : NULL;
  p->n++;
  return 0;
}

/* ------------------------------------------------------------------ */
/* Parser                                                              */

typedef struct {
  token *t;
  size_t n, i;
  jinja_error *err;
  int failed;
  int depth;
  int loops; /* enclosing for-loop bodies: break/continue need one */
} parser;

static token *peek(parser *P) {
  return &P->t[P->i < P->n ? P->i : P->n - 1];
}
static token *peek2(parser *P) {
  return &P->t[P->i + 1 < P->n ? P->i + 1 : P->n - 1];
}
static token *next(parser *P) {
  token *t = peek(P);
  if (P->i < P->n - 1)
    P->i++;
  return t;
}

static int is_op(token *t, const char *op) {
  return t->kind == TK_OP && strcmp(t->s, op) == 0;
}
static int is_name(token *t, const char *nm) {
  return t->kind == TK_NAME && strcmp(t->s, nm) == 0;
}

static const char *tok_desc(token *t) {
  switch (t->kind) {
  case TK_EOF:
    return "end of template";
  case TK_TEXT:
    return "template text";
  case TK_VAR_BEGIN:
    return "'{{'";
  case TK_VAR_END:
    return "'}}'";
  case TK_BLOCK_BEGIN:
    return "'{%'";
  case TK_BLOCK_END:
    return "'%}'";
  case TK_INT:
  case TK_FLOAT:
    return "a number";
  case TK_STR:
    return "a string";
  default:
    return t->s;
  }
}

static node *perr(parser *P, const char *fmt, ...) {
  if (!P->failed) {
    char m[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m, sizeof m, fmt, ap);
    va_end(ap);
    set_err(P->err, peek(P)->line, "%s (at %s)", m, tok_desc(peek(P)));
  }
  P->failed = 1;
  return NULL;
}

static int expect_op(parser *P, const char *op) {
  if (!is_op(peek(P), op)) {
    perr(P, "expected '%s'", op);
    return -1;
  }
  next(P);
  return 0;
}

static int expect_kind(parser *P, int kind, const char *what) {
  if (peek(P)->kind != kind) {
    perr(P, "expected %s", what);
    return -1;
  }
  next(P);
  return 0;
}

static node *parse_expr(parser *P);
static node *parse_or(parser *P);
static node *parse_unary(parser *P, int with_filter);
static node *parse_primary(parser *P);
static node *parse_postfix(parser *P, node *n);

static node *lit_node(json_t *v, int line) {
  node *n = new_node(N_LIT, line);
  if (!n) {
    json_decref(v);
    return NULL;
  }
  n->lit = v;
  return n;
}

/* Parses "(args)" after the '(' has been seen; fills n->v / n->names. */
static int parse_args(parser *P, node *n) {
  if (expect_op(P, "("))
    return -1;
  while (!is_op(peek(P), ")")) {
    const char *kw = NULL;
    if (peek(P)->kind == TK_NAME && is_op(peek2(P), "=")) {
      kw = next(P)->s;
      next(P);
    }
    node *a = parse_expr(P);
    if (!a || add_child(n, a, kw)) {
      free_node(a);
      return -1;
    }
    if (!is_op(peek(P), ","))
      break;
    next(P);
  }
  return expect_op(P, ")");
}

static node *parse_seq(parser *P, int kind, const char *close) {
  node *n = new_node(kind, peek(P)->line);
  next(P);
  while (n && !is_op(peek(P), close)) {
    node *k = parse_expr(P);
    if (!k)
      break;
    if (kind == N_DICT) {
      if (expect_op(P, ":")) {
        free_node(k);
        break;
      }
      node *v = parse_expr(P);
      node *pair = new_node(N_TUPLE, k->line);
      if (!v || !pair || add_child(pair, k, NULL) || add_child(pair, v, NULL)) {
        free_node(k);
        free_node(v);
        free_node(pair);
        break;
      }
      k = pair;
    }
    if (add_child(n, k, NULL)) {
      free_node(k);
      break;
    }
    if (!is_op(peek(P), ","))
      break;
    next(P);
  }
  if (P->failed || expect_op(P, close)) {
    free_node(n);
    return NULL;
  }
  return n;
}

static node *parse_primary(parser *P) {
  token *t = peek(P);
  int line = t->line;
  if (t->kind == TK_STR) {
    /* adjacent string literals concatenate */
    size_t total = 0, j = P->i;
    while (j < P->n && P->t[j].kind == TK_STR)
      total += P->t[j++].len;
    char *s = malloc(total + 1);
    if (!s)
      return perr(P, "out of memory");
    size_t o = 0;
    while (peek(P)->kind == TK_STR) {
      token *k = next(P);
      memcpy(s + o, k->s, k->len);
      o += k->len;
    }
    node *n = lit_node(json_stringn_nocheck(s, o), line);
    free(s);
    return n;
  }
  if (t->kind == TK_INT)
    return next(P), lit_node(json_integer(t->i), line);
  if (t->kind == TK_FLOAT)
    return next(P), lit_node(json_real(t->f), line);
  if (t->kind == TK_NAME) {
    next(P);
    if (!strcmp(t->s, "true") || !strcmp(t->s, "True"))
      return lit_node(json_true(), line);
    if (!strcmp(t->s, "false") || !strcmp(t->s, "False"))
      return lit_node(json_false(), line);
    if (!strcmp(t->s, "none") || !strcmp(t->s, "None"))
      return lit_node(json_null(), line);
    node *n = new_node(N_NAME, line);
    if (n)
      n->s = strdup(t->s);
    return n;
  }
  if (is_op(t, "(")) {
    next(P);
    if (is_op(peek(P), ")")) {
      next(P);
      return new_node(N_TUPLE, line);
    }
    node *e = parse_expr(P);
    if (!e)
      return NULL;
    if (is_op(peek(P), ",")) {
      node *tu = new_node(N_TUPLE, line);
      add_child(tu, e, NULL);
      while (is_op(peek(P), ",")) {
        next(P);
        if (is_op(peek(P), ")"))
          break;
        node *x = parse_expr(P);
        if (!x) {
          free_node(tu);
          return NULL;
        }
        add_child(tu, x, NULL);
      }
      e = tu;
    }
    if (expect_op(P, ")")) {
      free_node(e);
      return NULL;
    }
    return e;
  }
  if (is_op(t, "["))
    return parse_seq(P, N_LIST, "]");
  if (is_op(t, "{"))
    return parse_seq(P, N_DICT, "}");
  return perr(P, "unexpected token");
}

static node *parse_subscript(parser *P, node *obj) {
  int line = peek(P)->line;
  next(P); /* '[' */
  node *parts[3] = {NULL, NULL, NULL};
  int colons = 0;
  for (;;) {
    if (is_op(peek(P), "]"))
      break;
    if (is_op(peek(P), ":")) {
      if (++colons > 2)
        break;
      next(P);
      continue;
    }
    if (parts[colons])
      break;
    parts[colons] = parse_expr(P);
    if (!parts[colons])
      break;
  }
  if (P->failed || colons > 2 || expect_op(P, "]") || (!colons && !parts[0])) {
    for (int i = 0; i < 3; i++)
      free_node(parts[i]);
    free_node(obj);
    return P->failed ? NULL : perr(P, "bad subscript");
  }
  node *n = new_node(colons ? N_SLICE : N_ITEM, line);
  n->a = obj;
  n->b = parts[0];
  n->c = parts[1];
  n->d = parts[2];
  return n;
}

static node *parse_postfix(parser *P, node *n) {
  while (n) {
    token *t = peek(P);
    if (is_op(t, ".")) {
      next(P);
      token *nm = next(P);
      if (nm->kind != TK_NAME && nm->kind != TK_INT) {
        free_node(n);
        return perr(P, "expected attribute name after '.'");
      }
      node *a = new_node(nm->kind == TK_NAME ? N_ATTR : N_ITEM, t->line);
      a->a = n;
      if (nm->kind == TK_NAME)
        a->s = strdup(nm->s);
      else
        a->b = lit_node(json_integer(nm->i), t->line);
      n = a;
    } else if (is_op(t, "[")) {
      n = parse_subscript(P, n);
    } else if (is_op(t, "(")) {
      node *c = new_node(N_CALL, t->line);
      c->a = n;
      n = c;
      if (parse_args(P, c)) {
        free_node(c);
        return NULL;
      }
    } else {
      break;
    }
  }
  return n;
}

/* A test argument without parentheses ("is divisibleby 3"). */
static int starts_bare_arg(token *t) {
  if (t->kind == TK_STR || t->kind == TK_INT || t->kind == TK_FLOAT)
    return 1;
  if (t->kind == TK_OP)
    return is_op(t, "[") || is_op(t, "{");
  if (t->kind != TK_NAME)
    return 0;
  static const char *kw[] = {"and", "or", "else", "if", "is", "in", "not"};
  for (size_t i = 0; i < sizeof kw / sizeof *kw; i++)
    if (!strcmp(t->s, kw[i]))
      return 0;
  return 1;
}

static node *parse_filters(parser *P, node *n) {
  while (n) {
    token *t = peek(P);
    if (is_op(t, "|")) {
      next(P);
      token *nm = next(P);
      if (nm->kind != TK_NAME) {
        free_node(n);
        return perr(P, "expected filter name");
      }
      node *f = new_node(N_FILTER, t->line);
      f->s = strdup(nm->s);
      f->a = n;
      n = f;
      if (is_op(peek(P), "(") && parse_args(P, f)) {
        free_node(f);
        return NULL;
      }
    } else if (is_name(t, "is")) {
      next(P);
      node *f = new_node(N_TEST, t->line);
      f->a = n;
      n = f;
      if (is_name(peek(P), "not")) {
        next(P);
        f->neg = 1;
      }
      token *nm = next(P);
      if (nm->kind != TK_NAME) {
        free_node(f);
        return perr(P, "expected test name");
      }
      f->s = strdup(nm->s);
      if (is_op(peek(P), "(")) {
        if (parse_args(P, f)) {
          free_node(f);
          return NULL;
        }
      } else if (starts_bare_arg(peek(P))) {
        node *arg = parse_postfix(P, parse_primary(P));
        if (!arg) {
          free_node(f);
          return NULL;
        }
        add_child(f, arg, NULL);
      }
    } else {
      break;
    }
  }
  return n;
}

static node *parse_unary(parser *P, int with_filter) {
  token *t = peek(P);
  node *n;
  if (++P->depth > PARSE_MAX_DEPTH)
    return perr(P, "expression nests too deeply");
  if (is_op(t, "-") || is_op(t, "+")) {
    next(P);
    node *x = parse_unary(P, 0);
    n = x ? new_node(is_op(t, "-") ? N_NEG : N_POS, t->line) : NULL;
    if (n)
      n->a = x;
  } else {
    n = parse_postfix(P, parse_primary(P));
  }
  if (with_filter)
    n = parse_filters(P, n);
  P->depth--;
  return n;
}

static node *bin(int kind, const char *op, node *a, node *b, int line) {
  if (!a || !b) {
    free_node(a);
    free_node(b);
    return NULL;
  }
  node *n = new_node(kind, line);
  n->a = a;
  n->b = b;
  if (op)
    n->s = strdup(op);
  return n;
}

static node *parse_pow(parser *P) {
  node *n = parse_unary(P, 1);
  while (n && is_op(peek(P), "**")) {
    int line = next(P)->line;
    n = bin(N_BIN, "**", n, parse_unary(P, 1), line);
  }
  return n;
}

static node *parse_math2(parser *P) {
  node *n = parse_pow(P);
  while (n) {
    token *t = peek(P);
    if (!(is_op(t, "*") || is_op(t, "/") || is_op(t, "//") || is_op(t, "%")))
      break;
    next(P);
    n = bin(N_BIN, t->s, n, parse_pow(P), t->line);
  }
  return n;
}

static node *parse_concat(parser *P) {
  node *n = parse_math2(P);
  while (n && is_op(peek(P), "~")) {
    int line = next(P)->line;
    n = bin(N_BIN, "~", n, parse_math2(P), line);
  }
  return n;
}

static node *parse_math1(parser *P) {
  node *n = parse_concat(P);
  while (n) {
    token *t = peek(P);
    if (!(is_op(t, "+") || is_op(t, "-")))
      break;
    next(P);
    n = bin(N_BIN, t->s, n, parse_concat(P), t->line);
  }
  return n;
}

/* a < b <= c ... as N_CHAIN: v[] operands, names[i] the operator before
 * v[i] (Python semantics: each operand evaluated once). */
static node *parse_compare(parser *P) {
  node *n = parse_math1(P);
  int chained = 0; /* n is this call's chain (not a parenthesized operand) */
  while (n) {
    token *t = peek(P);
    const char *op = NULL;
    if (is_op(t, "==") || is_op(t, "!=") || is_op(t, "<") || is_op(t, ">") ||
        is_op(t, "<=") || is_op(t, ">="))
      op = t->s;
    else if (is_name(t, "in"))
      op = "in";
    else if (is_name(t, "not") && is_name(peek2(P), "in")) {
      next(P);
      op = "notin";
    } else
      break;
    next(P);
    node *rhs = parse_math1(P);
    if (!rhs) {
      free_node(n);
      return NULL;
    }
    if (!chained) {
      node *c = new_node(N_CHAIN, t->line);
      add_child(c, n, NULL);
      n = c;
      chained = 1;
    }
    add_child(n, rhs, op);
  }
  return n;
}

static node *parse_not(parser *P) {
  if (is_name(peek(P), "not")) {
    int line = next(P)->line;
    if (++P->depth > PARSE_MAX_DEPTH)
      return perr(P, "expression nests too deeply");
    node *x = parse_not(P);
    P->depth--;
    if (!x)
      return NULL;
    node *n = new_node(N_NOT, line);
    n->a = x;
    return n;
  }
  return parse_compare(P);
}

static node *parse_and(parser *P) {
  node *n = parse_not(P);
  while (n && is_name(peek(P), "and")) {
    int line = next(P)->line;
    n = bin(N_AND, NULL, n, parse_not(P), line);
  }
  return n;
}

static node *parse_or(parser *P) {
  node *n = parse_and(P);
  while (n && is_name(peek(P), "or")) {
    int line = next(P)->line;
    n = bin(N_OR, NULL, n, parse_and(P), line);
  }
  return n;
}

static node *parse_expr(parser *P) {
  if (++P->depth > PARSE_MAX_DEPTH)
    return perr(P, "expression nests too deeply");
  node *n = parse_or(P);
  while (n && is_name(peek(P), "if")) {
    int line = next(P)->line;
    node *c = new_node(N_COND, line);
    c->a = n;
    c->b = parse_or(P);
    n = c;
    if (!c->b) {
      free_node(c);
      n = NULL;
      break;
    }
    if (is_name(peek(P), "else")) {
      next(P);
      c->c = parse_expr(P);
      if (!c->c) {
        free_node(c);
        n = NULL;
      }
    }
  }
  P->depth--;
  return n;
}

/* expr or "a, b, c" (an implicit tuple), as in set and for. */
static node *parse_tuple_expr(parser *P, int names_only) {
  int line = peek(P)->line;
  node *first = names_only ? parse_primary(P) : parse_expr(P);
  if (!first)
    return NULL;
  if (names_only && first->kind == N_NAME) {
    first = parse_postfix(P, first);
    if (!first)
      return NULL;
  }
  if (!is_op(peek(P), ","))
    return first;
  node *tu = new_node(N_TUPLE, line);
  add_child(tu, first, NULL);
  while (is_op(peek(P), ",")) {
    next(P);
    node *x = names_only ? parse_primary(P) : parse_expr(P);
    if (!x) {
      free_node(tu);
      return NULL;
    }
    add_child(tu, x, NULL);
  }
  return tu;
}

static node *parse_body(parser *P, const char **ends, size_t nends,
                        const char **which);

static int end_tag(parser *P) {
  return expect_kind(P, TK_BLOCK_END, "'%}'");
}

/* After `{% else`: its '%}', then the body up to `{% END`. */
static node *parse_else(parser *P, const char *end) {
  const char *ends[] = {end}, *which = NULL;
  if (end_tag(P))
    return NULL;
  return parse_body(P, ends, 1, &which);
}

static node *parse_if(parser *P, int line) {
  node *n = new_node(N_IF, line);
  static const char *ends[] = {"elif", "else", "endif"};
  const char *which = NULL;
  n->a = parse_expr(P);
  if (!n->a || end_tag(P))
    goto fail;
  n->b = parse_body(P, ends, 3, &which);
  if (!n->b)
    goto fail;
  if (!strcmp(which, "elif")) {
    node *e = new_node(N_BODY, peek(P)->line);
    n->c = e;
    node *sub = parse_if(P, peek(P)->line);
    if (!sub)
      goto fail;
    add_child(e, sub, NULL);
    return n;
  }
  if (!strcmp(which, "else")) {
    n->c = parse_else(P, "endif");
    if (!n->c)
      goto fail;
  }
  if (end_tag(P))
    goto fail;
  return n;
fail:
  free_node(n);
  return NULL;
}

static node *parse_for(parser *P, int line) {
  node *n = new_node(N_FOR, line);
  static const char *ends[] = {"else", "endfor"};
  const char *which = NULL;
  n->a = parse_tuple_expr(P, 1);
  if (!n->a)
    goto fail;
  if (!is_name(peek(P), "in")) {
    perr(P, "expected 'in' in for loop");
    goto fail;
  }
  next(P);
  n->b = parse_or(P);
  if (!n->b)
    goto fail;
  if (is_name(peek(P), "if")) {
    next(P);
    n->c = parse_expr(P);
    if (!n->c)
      goto fail;
  }
  if (is_name(peek(P), "recursive")) {
    perr(P, "recursive for loops are not supported");
    goto fail;
  }
  if (end_tag(P))
    goto fail;
  P->loops++;
  node *body = parse_body(P, ends, 2, &which);
  P->loops--;
  if (!body)
    goto fail;
  add_child(n, body, NULL);
  if (!strcmp(which, "else")) {
    n->d = parse_else(P, "endfor");
    if (!n->d)
      goto fail;
  }
  if (end_tag(P))
    goto fail;
  return n;
fail:
  free_node(n);
  return NULL;
}

static node *parse_set(parser *P, int line) {
  node *target = parse_tuple_expr(P, 1);
  if (!target)
    return NULL;
  if (is_op(peek(P), "=")) {
    next(P);
    node *n = new_node(N_SET, line);
    n->a = target;
    n->b = parse_tuple_expr(P, 0);
    if (!n->b || end_tag(P)) {
      free_node(n);
      return NULL;
    }
    return n;
  }
  if (target->kind != N_NAME) {
    free_node(target);
    return perr(P, "expected '=' in set");
  }
  node *n = new_node(N_SETBLOCK, line);
  n->a = target;
  static const char *ends[] = {"endset"};
  const char *which;
  if (end_tag(P) || !(n->b = parse_body(P, ends, 1, &which)) || end_tag(P)) {
    free_node(n);
    return NULL;
  }
  return n;
}

static node *parse_macro(parser *P, int line) {
  token *nm = next(P);
  if (nm->kind != TK_NAME)
    return perr(P, "expected macro name");
  node *n = new_node(N_MACRO, line);
  n->s = strdup(nm->s);
  node *params = new_node(N_TUPLE, line);
  n->a = params;
  if (expect_op(P, "("))
    goto fail;
  while (!is_op(peek(P), ")")) {
    token *pn = next(P);
    if (pn->kind != TK_NAME) {
      perr(P, "expected parameter name");
      goto fail;
    }
    node *def = NULL;
    if (is_op(peek(P), "=")) {
      next(P);
      def = parse_expr(P);
      if (!def)
        goto fail;
    }
    add_child(params, def, pn->s);
    if (!is_op(peek(P), ","))
      break;
    next(P);
  }
  static const char *ends[] = {"endmacro"};
  const char *which;
  if (expect_op(P, ")") || end_tag(P))
    goto fail;
  int saved_loops = P->loops;
  P->loops = 0;
  n->b = parse_body(P, ends, 1, &which);
  P->loops = saved_loops;
  if (!n->b)
    goto fail;
  if (peek(P)->kind == TK_NAME)
    next(P); /* {% endmacro name %} */
  if (end_tag(P))
    goto fail;
  return n;
fail:
  free_node(n);
  return NULL;
}

static node *parse_statement(parser *P) {
  token *t = next(P);
  int line = t->line;
  if (t->kind != TK_NAME)
    return perr(P, "expected a tag name");
  if (!strcmp(t->s, "if"))
    return parse_if(P, line);
  if (!strcmp(t->s, "for"))
    return parse_for(P, line);
  if (!strcmp(t->s, "set"))
    return parse_set(P, line);
  if (!strcmp(t->s, "macro"))
    return parse_macro(P, line);
  if ((!strcmp(t->s, "break") || !strcmp(t->s, "continue")) && !P->loops) {
    P->i--;
    return perr(P, "'%s' outside a for loop", t->s);
  }
  if (!strcmp(t->s, "break") || !strcmp(t->s, "continue")) {
    node *n = new_node(t->s[0] == 'b' ? N_BREAK : N_CONTINUE, line);
    if (end_tag(P)) {
      free_node(n);
      return NULL;
    }
    return n;
  }
  if (!strcmp(t->s, "do")) {
    node *n = new_node(N_DO, line);
    n->a = parse_tuple_expr(P, 0);
    if (!n->a || end_tag(P)) {
      free_node(n);
      return NULL;
    }
    return n;
  }
  if (!strcmp(t->s, "generation")) {
    /* transformers' AssistantTracker: renders its body unchanged */
    static const char *ends[] = {"endgeneration"};
    const char *which;
    node *b;
    if (end_tag(P) || !(b = parse_body(P, ends, 1, &which)))
      return NULL;
    if (end_tag(P)) {
      free_node(b);
      return NULL;
    }
    return b;
  }
  P->i--;
  return perr(P, "unsupported tag '%s'", t->s);
}

static node *parse_body(parser *P, const char **ends, size_t nends,
                        const char **which) {
  node *body = new_node(N_BODY, peek(P)->line);
  if (++P->depth > PARSE_MAX_DEPTH) {
    free_node(body);
    return perr(P, "blocks nest too deeply");
  }
  for (;;) {
    token *t = peek(P);
    node *s = NULL;
    if (t->kind == TK_EOF) {
      if (nends) {
        perr(P, "missing {%% %s %%}", ends[nends - 1]);
        goto fail;
      }
      break;
    }
    if (t->kind == TK_TEXT) {
      next(P);
      s = new_node(N_TEXT, t->line);
      s->s = malloc(t->len + 1);
      memcpy(s->s, t->s, t->len + 1);
      s->slen = t->len;
    } else if (t->kind == TK_VAR_BEGIN) {
      next(P);
      s = new_node(N_OUT, t->line);
      s->a = parse_expr(P);
      if (!s->a || expect_kind(P, TK_VAR_END, "'}}'")) {
        free_node(s);
        goto fail;
      }
    } else if (t->kind == TK_BLOCK_BEGIN) {
      next(P);
      token *nm = peek(P);
      for (size_t i = 0; nm->kind == TK_NAME && i < nends; i++)
        if (!strcmp(nm->s, ends[i])) {
          next(P);
          *which = ends[i];
          P->depth--;
          return body;
        }
      if ((nm->kind == TK_NAME && !strncmp(nm->s, "end", 3)) ||
          is_name(nm, "elif") || is_name(nm, "else")) {
        perr(P, "unexpected '%s'", nm->s);
        goto fail;
      }
      s = parse_statement(P);
      if (!s)
        goto fail;
    } else {
      perr(P, "unexpected token");
      goto fail;
    }
    if (add_child(body, s, NULL)) {
      free_node(s);
      goto fail;
    }
  }
  P->depth--;
  return body;
fail:
  free_node(body);
  return NULL;
}

static void free_toks(toklist *t) {
  for (size_t i = 0; i < t->n; i++)
    free(t->v[i].s);
  free(t->v);
}

int jinja_parse(const char *src, size_t len, jinja_template **out,
                jinja_error *err) {
  jinja_error unused; /* err is optional (jinja.h) */
  if (!err)
    err = &unused;
  memset(err, 0, sizeof *err);
  *out = NULL;
  /* As Jinja2: newlines normalized to \n, one trailing newline dropped
   * (keep_trailing_newline off). */
  char *norm = malloc(len + 1);
  if (!norm) {
    set_err(err, 0, "out of memory");
    return -1;
  }
  size_t nl = 0;
  for (size_t i = 0; i < len; i++) {
    if (src[i] == '\r') {
      norm[nl++] = '\n';
      if (i + 1 < len && src[i + 1] == '\n')
        i++;
    } else {
      norm[nl++] = src[i];
    }
  }
  if (nl && norm[nl - 1] == '\n')
    nl--;
  norm[nl] = 0;
  toklist toks = {0};
  int lrc = lex_all(norm, nl, &toks, err);
  free(norm);
  if (lrc) {
    if (!err->msg[0])
      set_err(err, 0, "out of memory");
    free_toks(&toks);
    return -1;
  }
  parser P = {toks.v, toks.n, 0, err, 0, 0, 0};
  node *root = parse_body(&P, NULL, 0, NULL);
  free_toks(&toks);
  if (!root || P.failed) {
    free_node(root);
    if (!err->msg[0])
      set_err(err, 0, "out of memory");
    return -1;
  }
  jinja_template *t = malloc(sizeof *t);
  if (!t) {
    free_node(root);
    set_err(err, 0, "out of memory");
    return -1;
  }
  t->root = root;
  *out = t;
  return 0;
}

void jinja_free(jinja_template *t) {
  if (!t)
    return;
  free_node(t->root);
  free(t);
}

/* ------------------------------------------------------------------ */
/* Output buffer                                                       */

typedef struct {
  char *p;
  size_t n, cap, max;
} sbuf;

static int sb_put(sbuf *b, const char *s, size_t n) {
  if (b->n + n + 1 > b->max)
    return -1;
  if (b->n + n + 1 > b->cap) {
    size_t nc = b->cap ? b->cap : 256;
    while (nc < b->n + n + 1)
      nc *= 2;
    char *np = realloc(b->p, nc);
    if (!np)
      return -1;
    b->p = np;
    b->cap = nc;
  }
  memcpy(b->p + b->n, s, n);
  b->n += n;
  b->p[b->n] = 0;
  return 0;
}
static int sb_str(sbuf *b, const char *s) {
  return sb_put(b, s, strlen(s));
}
static int sb_chr(sbuf *b, char c) {
  return sb_put(b, &c, 1);
}

/* ------------------------------------------------------------------ */
/* Render state                                                        */

#define MAX_FRAMES 512
#define MAX_EVAL_DEPTH 1000
#define MAX_LIST 1000000

typedef struct {
  json_t *frames[MAX_FRAMES];
  int nf, base;
  sbuf *out;
  jinja_error *err;
  int failed;
  int ctl; /* 1 break, 2 continue */
  long steps, max_steps;
  int depth, max_depth;
  int edepth; /* eval recursion depth, bounded by MAX_EVAL_DEPTH */
  size_t max_output;
  long long now;
} rctx;

static json_t *fail(rctx *r, int line, const char *fmt, ...) {
  if (!r->failed) {
    char m[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m, sizeof m, fmt, ap);
    va_end(ap);
    set_err(r->err, line, "%s", m);
  }
  r->failed = 1;
  return NULL;
}

static json_t *lookup(rctx *r, const char *name) {
  for (int i = r->nf - 1; i >= r->base; i--) {
    json_t *v = json_object_get(r->frames[i], name);
    if (v)
      return v;
  }
  return r->base > 0 ? json_object_get(r->frames[0], name) : NULL;
}

static int push_frame(rctx *r, int line) {
  if (r->nf >= MAX_FRAMES) {
    fail(r, line, "scopes nest too deeply");
    return -1;
  }
  r->frames[r->nf] = json_object();
  if (!r->frames[r->nf])
    return -1;
  r->nf++;
  return 0;
}
static void pop_frame(rctx *r) {
  json_decref(r->frames[--r->nf]);
}

/* ------------------------------------------------------------------ */
/* Values                                                              */

static int is_macro(json_t *v) {
  return json_is_object(v) && json_object_get(v, MACRO_KEY);
}

static const char *GLOBALS[] = {"raise_exception", "strftime_now", "range",
                                "namespace", "dict"};

/* A global function as a value ("strftime_now is defined"), or NULL. */
static json_t *global_value(const char *name) {
  for (size_t i = 0; i < sizeof GLOBALS / sizeof *GLOBALS; i++)
    if (!strcmp(name, GLOBALS[i]))
      return json_pack("{ss}", GLOBAL_KEY, name);
  return NULL;
}
static int is_num(json_t *v) {
  return json_is_integer(v) || json_is_real(v);
}
static double num(json_t *v) {
  return json_is_integer(v) ? (double)json_integer_value(v)
         : json_is_real(v)  ? json_real_value(v)
         : json_is_true(v)  ? 1.0
                            : 0.0;
}
static json_t *str_n(const char *s, size_t n) {
  return json_stringn_nocheck(s, n);
}
static json_t *str(const char *s);

/* The value of stored object key k (an int for INT_KEY keys). */
static json_t *key_value(const char *k) {
  if (k[0] == INT_KEY)
    return json_integer(strtoll(k + 1, NULL, 10));
  return str(k);
}

/* Stored key for an integer dict key, into buf. */
static const char *int_key(json_t *v, char *buf, size_t n) {
  snprintf(buf, n, "%c%lld", INT_KEY, (long long)json_integer_value(v));
  return buf;
}

static json_t *str(const char *s) {
  return json_stringn_nocheck(s, strlen(s));
}

static int truthy(json_t *v) {
  if (!v || json_is_null(v) || json_is_false(v))
    return 0;
  if (json_is_true(v))
    return 1;
  if (json_is_integer(v))
    return json_integer_value(v) != 0;
  if (json_is_real(v))
    return json_real_value(v) != 0.0;
  if (json_is_string(v))
    return json_string_length(v) > 0;
  if (json_is_array(v))
    return json_array_size(v) > 0;
  if (is_macro(v) || json_object_get(v, NS_KEY))
    return 1;
  return json_object_size(v) > 0;
}

/* Python repr of a float: shortest round-trip digits, "1.0", "1e-05". */
static void fmt_float(double x, char *o, size_t on) {
  if (isnan(x)) {
    snprintf(o, on, "nan");
    return;
  }
  if (isinf(x)) {
    snprintf(o, on, x < 0 ? "-inf" : "inf");
    return;
  }
  char e[40];
  int p;
  for (p = 1; p <= 17; p++) {
    snprintf(e, sizeof e, "%.*e", p - 1, x);
    if (strtod(e, NULL) == x)
      break;
  }
  char *ep = strchr(e, 'e');
  int exp = atoi(ep + 1);
  char dig[24];
  size_t nd = 0;
  for (char *c = e; c < ep; c++)
    if (isdigit((unsigned char)*c))
      dig[nd++] = *c;
  while (nd > 1 && dig[nd - 1] == '0')
    nd--;
  dig[nd] = 0;
  const char *sign = x < 0 ? "-" : "";
  if (exp >= -4 && exp < 16) {
    int dec = (int)nd - 1 - exp;
    snprintf(o, on, "%.*f", dec > 0 ? dec : 1, x);
  } else if (nd > 1) {
    snprintf(o, on, "%s%c.%se%c%02d", sign, dig[0], dig + 1,
             exp < 0 ? '-' : '+', abs(exp));
  } else {
    snprintf(o, on, "%s%ce%c%02d", sign, dig[0], exp < 0 ? '-' : '+', abs(exp));
  }
}

static int py_repr(sbuf *b, json_t *v);

/* Code points Python's repr() escapes although UTF-8 could show them: the
 * common non-printable ones (C1 controls, separators other than ' ', format
 * characters). Not the full Unicode table: rare ones print as themselves. */
static int py_unprintable(unsigned long cp) {
  static const unsigned long ranges[][2] = {
      {0x80, 0xA0},       {0xAD, 0xAD},       {0x600, 0x605},
      {0x61C, 0x61C},     {0x6DD, 0x6DD},     {0x70F, 0x70F},
      {0x1680, 0x1680},   {0x180E, 0x180E},   {0x2000, 0x200F},
      {0x2028, 0x202F},   {0x205F, 0x2064},   {0x2066, 0x206F},
      {0x3000, 0x3000},   {0xD800, 0xF8FF},   {0xFEFF, 0xFEFF},
      {0xFFF9, 0xFFFB},   {0x110BD, 0x110BD}, {0x1D173, 0x1D17A},
      {0xE0001, 0xE0001}, {0xE0020, 0xE007F}, {0xF0000, 0x10FFFF}};
  for (size_t i = 0; i < sizeof ranges / sizeof *ranges; i++)
    if (cp >= ranges[i][0] && cp <= ranges[i][1])
      return 1;
  return 0;
}

static int repr_str(sbuf *b, const char *s, size_t n) {
  int has_sq = memchr(s, '\'', n) != NULL, has_dq = memchr(s, '"', n) != NULL;
  char q = (has_sq && !has_dq) ? '"' : '\'';
  if (sb_chr(b, q))
    return -1;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    const char *esc = NULL;
    char tmp[16];
    if (c == '\\')
      esc = "\\\\";
    else if (c == '\n')
      esc = "\\n";
    else if (c == '\r')
      esc = "\\r";
    else if (c == '\t')
      esc = "\\t";
    else if (c == (unsigned char)q)
      esc = q == '\'' ? "\\'" : "\\\"";
    else if (c < 0x20 || c == 0x7f) {
      snprintf(tmp, sizeof tmp, "\\x%02x", c);
      esc = tmp;
    } else if (c >= 0xC0) {
      int extra = c >= 0xF0 ? 3 : c >= 0xE0 ? 2 : 1;
      unsigned long cp = c & (0x3F >> extra);
      size_t j = i;
      for (int k = 0; k < extra && j + 1 < n; k++)
        cp = (cp << 6) | ((unsigned char)s[++j] & 0x3F);
      if (py_unprintable(cp)) {
        snprintf(tmp, sizeof tmp,
                 cp < 0x100     ? "\\x%02lx"
                 : cp < 0x10000 ? "\\u%04lx"
                                : "\\U%08lx",
                 cp);
        esc = tmp;
        i = j;
      }
    }
    if (esc ? sb_str(b, esc) : sb_chr(b, (char)c))
      return -1;
  }
  return sb_chr(b, q);
}

/* Appends the str() of v (Python semantics; undefined is ""). */
static int to_str(sbuf *b, json_t *v) {
  char t[64];
  if (!v)
    return 0;
  switch (json_typeof(v)) {
  case JSON_STRING:
    return sb_put(b, json_string_value(v), json_string_length(v));
  case JSON_INTEGER:
    snprintf(t, sizeof t, "%lld", (long long)json_integer_value(v));
    return sb_str(b, t);
  case JSON_REAL:
    fmt_float(json_real_value(v), t, sizeof t);
    return sb_str(b, t);
  case JSON_TRUE:
    return sb_str(b, "True");
  case JSON_FALSE:
    return sb_str(b, "False");
  case JSON_NULL:
    return sb_str(b, "None");
  default:
    return py_repr(b, v);
  }
}

static int py_repr(sbuf *b, json_t *v) {
  if (!v)
    return 0;
  if (json_is_string(v))
    return repr_str(b, json_string_value(v), json_string_length(v));
  if (is_macro(v))
    return sb_str(b, "<macro>");
  if (json_is_array(v)) {
    if (sb_chr(b, '['))
      return -1;
    for (size_t i = 0; i < json_array_size(v); i++)
      if ((i && sb_str(b, ", ")) || py_repr(b, json_array_get(v, i)))
        return -1;
    return sb_chr(b, ']');
  }
  if (json_is_object(v)) {
    const char *k;
    json_t *x;
    int first = 1;
    if (sb_chr(b, '{'))
      return -1;
    json_object_foreach(v, k, x) {
      if (k[0] == '\x01')
        continue;
      if ((!first && sb_str(b, ", ")) ||
          (k[0] == INT_KEY ? sb_str(b, k + 1) : repr_str(b, k, strlen(k))) ||
          sb_str(b, ": ") || py_repr(b, x))
        return -1;
      first = 0;
    }
    return sb_chr(b, '}');
  }
  return to_str(b, v);
}

/* json.dumps options, as transformers' tojson filter takes them. */
typedef struct {
  int indent; /* -1 = none (single line) */
  int sort_keys, ascii;
  const char *item_sep, *key_sep;
} jdump;

static int dump_string(sbuf *b, const char *s, size_t n, int ascii) {
  char t[32];
  if (sb_chr(b, '"'))
    return -1;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    const char *esc = NULL;
    if (c == '"')
      esc = "\\\"";
    else if (c == '\\')
      esc = "\\\\";
    else if (c == '\n')
      esc = "\\n";
    else if (c == '\r')
      esc = "\\r";
    else if (c == '\t')
      esc = "\\t";
    else if (c == '\b')
      esc = "\\b";
    else if (c == '\f')
      esc = "\\f";
    else if (c < 0x20) {
      snprintf(t, sizeof t, "\\u%04x", c);
      esc = t;
    } else if (c >= 0x80 && ascii) {
      int extra = c >= 0xF0 ? 3 : c >= 0xE0 ? 2 : c >= 0xC0 ? 1 : 0;
      unsigned long cp = c & (0x3F >> extra);
      for (int k = 0; k < extra && i + 1 < n; k++)
        cp = (cp << 6) | ((unsigned char)s[++i] & 0x3F);
      if (cp >= 0x10000) {
        cp -= 0x10000;
        snprintf(t, sizeof t, "\\u%04lx\\u%04lx", 0xD800 + (cp >> 10),
                 0xDC00 + (cp & 0x3FF));
      } else {
        snprintf(t, sizeof t, "\\u%04lx", cp);
      }
      esc = t;
    }
    if (esc ? sb_str(b, esc) : sb_chr(b, (char)c))
      return -1;
  }
  return sb_chr(b, '"');
}

static int dump_indent(sbuf *b, const jdump *o, int level) {
  if (o->indent < 0)
    return 0;
  if (sb_chr(b, '\n'))
    return -1;
  for (int s = 0; s < o->indent * level; s++)
    if (sb_chr(b, ' '))
      return -1;
  return 0;
}

static int cmp_keys(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int dump_json(sbuf *b, json_t *v, const jdump *o, int level);

static int dump_object(sbuf *b, json_t *v, const jdump *o, int level) {
  size_t n = 0;
  const char *k;
  json_t *x;
  const char **keys = malloc((json_object_size(v) + 1) * sizeof *keys);
  if (!keys)
    return -1;
  json_object_foreach(v, k, x) if (k[0] != '\x01') keys[n++] = k;
  if (o->sort_keys)
    qsort(keys, n, sizeof *keys, cmp_keys);
  int rc = sb_chr(b, '{');
  for (size_t i = 0; i < n && !rc; i++) {
    rc = (i && sb_str(b, o->item_sep)) || dump_indent(b, o, level + 1) ||
         dump_string(b, keys[i] + (keys[i][0] == INT_KEY),
                     strlen(keys[i]) - (keys[i][0] == INT_KEY), o->ascii) ||
         sb_str(b, o->key_sep) ||
         dump_json(b, json_object_get(v, keys[i]), o, level + 1);
  }
  if (!rc && n)
    rc = dump_indent(b, o, level);
  free(keys);
  return rc || sb_chr(b, '}');
}

/* Python json.dumps (default ensure_ascii=False, separators ", " / ": ";
 * with indent "," and newlines), keys in insertion order unless sorted. */
static int dump_json(sbuf *b, json_t *v, const jdump *o, int level) {
  if (!v)
    return sb_str(b, "null");
  switch (json_typeof(v)) {
  case JSON_STRING:
    return dump_string(b, json_string_value(v), json_string_length(v),
                       o->ascii);
  case JSON_INTEGER:
  case JSON_REAL:
    if (json_is_real(v) && !isfinite(json_real_value(v)))
      return sb_str(b, isnan(json_real_value(v)) ? "NaN"
                       : json_real_value(v) > 0  ? "Infinity"
                                                 : "-Infinity");
    return to_str(b, v);
  case JSON_TRUE:
    return sb_str(b, "true");
  case JSON_FALSE:
    return sb_str(b, "false");
  case JSON_NULL:
    return sb_str(b, "null");
  case JSON_OBJECT:
    return dump_object(b, v, o, level);
  default:
    break;
  }
  size_t n = json_array_size(v);
  if (sb_chr(b, '['))
    return -1;
  for (size_t i = 0; i < n; i++)
    if ((i && sb_str(b, o->item_sep)) || dump_indent(b, o, level + 1) ||
        dump_json(b, json_array_get(v, i), o, level + 1))
      return -1;
  if (n && dump_indent(b, o, level))
    return -1;
  return sb_chr(b, ']');
}

/* str(v) as a new json string. */
static json_t *stringify(rctx *r, json_t *v, int line) {
  if (json_is_string(v))
    return json_incref(v);
  sbuf b = {0};
  b.max = r->max_output;
  if (to_str(&b, v)) {
    free(b.p);
    return fail(r, line, "value too large to convert to a string");
  }
  json_t *s = str_n(b.p ? b.p : "", b.n);
  free(b.p);
  return s;
}

static int values_equal(json_t *a, json_t *b) {
  if (!a || !b)
    return a == b;
  if (is_num(a) && is_num(b))
    return num(a) == num(b);
  if (json_is_boolean(a) && is_num(b))
    return num(a) == num(b);
  if (is_num(a) && json_is_boolean(b))
    return num(a) == num(b);
  return json_equal(a, b);
}

/* UTF-8: number of code points, and byte offset of code point i. */
static size_t u8_len(const char *s, size_t n) {
  size_t c = 0;
  for (size_t i = 0; i < n; i++)
    if (((unsigned char)s[i] & 0xC0) != 0x80)
      c++;
  return c;
}
static size_t u8_off(const char *s, size_t n, size_t cp) {
  size_t c = 0, i = 0;
  for (; i < n; i++)
    if (((unsigned char)s[i] & 0xC0) != 0x80) {
      if (c == cp)
        return i;
      c++;
    }
  return n;
}

static long long length_of(json_t *v) {
  if (!v)
    return 0;
  if (json_is_string(v))
    return (long long)u8_len(json_string_value(v), json_string_length(v));
  if (json_is_array(v))
    return (long long)json_array_size(v);
  if (json_is_object(v))
    return (long long)json_object_size(v);
  return -1;
}

/* A new array of the items iteration over v yields (objects: keys,
 * strings: characters, undefined/none: empty). NULL with error otherwise. */
static json_t *iter_items(rctx *r, json_t *v, int line) {
  if (json_is_array(v))
    return json_incref(v);
  json_t *a = json_array();
  if (!v || json_is_null(v))
    return a;
  if (json_is_object(v) && !is_macro(v)) {
    const char *k;
    json_t *x;
    json_object_foreach(v, k, x) if (k[0] != '\x01')
        json_array_append_new(a, key_value(k));
    return a;
  }
  if (json_is_string(v)) {
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    for (size_t i = 0; i < n;) {
      size_t j = i + 1;
      while (j < n && ((unsigned char)s[j] & 0xC0) == 0x80)
        j++;
      json_array_append_new(a, str_n(s + i, j - i));
      i = j;
    }
    return a;
  }
  json_decref(a);
  return fail(r, line, "value of type %s is not iterable",
              json_is_integer(v)   ? "int"
              : json_is_real(v)    ? "float"
              : json_is_boolean(v) ? "bool"
                                   : "object");
}

static const char *type_name(json_t *v) {
  if (!v)
    return "undefined";
  switch (json_typeof(v)) {
  case JSON_STRING:
    return "string";
  case JSON_INTEGER:
    return "int";
  case JSON_REAL:
    return "float";
  case JSON_TRUE:
  case JSON_FALSE:
    return "bool";
  case JSON_NULL:
    return "none";
  case JSON_ARRAY:
    return "list";
  default:
    return is_macro(v) ? "macro" : "dict";
  }
}

/* ------------------------------------------------------------------ */
/* Evaluation                                                          */

#define MAX_ARGS 16

typedef struct {
  json_t *pos[MAX_ARGS];
  int npos;
  const char *kwn[MAX_ARGS];
  json_t *kw[MAX_ARGS];
  int nkw;
} args;

static json_t *eval(rctx *r, node *n);

static void free_args(args *a) {
  for (int i = 0; i < a->npos; i++)
    json_decref(a->pos[i]);
  for (int i = 0; i < a->nkw; i++)
    json_decref(a->kw[i]);
}

/* Evaluates n->v[from..] into a; undefined arguments stay NULL. */
static int eval_args(rctx *r, node *n, size_t from, args *a) {
  memset(a, 0, sizeof *a);
  for (size_t i = from; i < n->n; i++) {
    if ((n->names[i] ? a->nkw : a->npos) >= MAX_ARGS) {
      fail(r, n->line, "too many arguments");
      return -1;
    }
    json_t *v = eval(r, n->v[i]);
    if (r->failed)
      return -1;
    if (n->names[i]) {
      a->kwn[a->nkw] = n->names[i];
      a->kw[a->nkw++] = v;
    } else {
      a->pos[a->npos++] = v;
    }
  }
  return 0;
}

/* Argument idx (positional) or name (keyword); borrowed, NULL if absent. */
static json_t *arg(args *a, int idx, const char *name) {
  for (int i = 0; name && i < a->nkw; i++)
    if (!strcmp(a->kwn[i], name))
      return a->kw[i];
  return idx >= 0 && idx < a->npos ? a->pos[idx] : NULL;
}

static json_t *binop(rctx *r, const char *op, json_t *a, json_t *b, int line);

/* Whether target is v or inside it (so storing v in target makes a cycle);
 * too deep to tell counts as yes. */
static int reaches(json_t *v, json_t *target, int depth) {
  if (v == target || depth > 256)
    return 1;
  if (json_is_array(v)) {
    for (size_t i = 0; i < json_array_size(v); i++)
      if (reaches(json_array_get(v, i), target, depth + 1))
        return 1;
  } else if (json_is_object(v)) {
    const char *k;
    json_t *x;
    json_object_foreach(v, k, x) if (reaches(x, target, depth + 1)) return 1;
  }
  return 0;
}

/* Whether v nests containers deeper than MAX_NEST (printing and freeing it
 * recurse). */
#define MAX_NEST 256
static int too_deep(json_t *v, int depth) {
  if (depth > MAX_NEST)
    return 1;
  if (json_is_array(v)) {
    for (size_t i = 0; i < json_array_size(v); i++)
      if (too_deep(json_array_get(v, i), depth + 1))
        return 1;
  } else if (json_is_object(v)) {
    const char *k;
    json_t *x;
    json_object_foreach(v, k, x) if (too_deep(x, depth + 1)) return 1;
  }
  return 0;
}

static json_t *get_attr(json_t *obj, const char *name) {
  if (json_is_object(obj) && !is_macro(obj))
    return json_incref(json_object_get(obj, name));
  return NULL;
}

static json_t *get_item(rctx *r, json_t *obj, json_t *key, int line) {
  if (!obj || !key)
    return NULL;
  if (json_is_object(obj)) {
    char kb[32];
    if (json_is_string(key))
      return json_incref(json_object_get(obj, json_string_value(key)));
    if (json_is_integer(key))
      return json_incref(json_object_get(obj, int_key(key, kb, sizeof kb)));
    return NULL;
  }
  if (json_is_array(obj) || json_is_string(obj)) {
    if (!json_is_integer(key) && !json_is_boolean(key))
      return fail(r, line, "list indices must be integers, not %s",
                  type_name(key));
    long long i = (long long)num(key), len = length_of(obj);
    if (i < 0)
      i += len;
    if (i < 0 || i >= len)
      return NULL;
    if (json_is_array(obj))
      return json_incref(json_array_get(obj, (size_t)i));
    const char *s = json_string_value(obj);
    size_t n = json_string_length(obj), o = u8_off(s, n, (size_t)i);
    return str_n(s + o, u8_off(s, n, (size_t)i + 1) - o);
  }
  return NULL;
}

static json_t *do_slice(rctx *r, json_t *obj, json_t *a, json_t *b, json_t *c,
                        int line) {
  long long len = length_of(obj);
  if (!json_is_array(obj) && !json_is_string(obj))
    return obj ? fail(r, line, "cannot slice a %s", type_name(obj)) : NULL;
  long long step = c && !json_is_null(c) ? (long long)num(c) : 1;
  if (step == 0)
    return fail(r, line, "slice step cannot be zero");
  long long lo, hi;
  if (step > 0) {
    lo = a && !json_is_null(a) ? (long long)num(a) : 0;
    hi = b && !json_is_null(b) ? (long long)num(b) : len;
    if (lo < 0)
      lo = lo + len < 0 ? 0 : lo + len;
    if (hi < 0)
      hi = hi + len < 0 ? 0 : hi + len;
    if (lo > len)
      lo = len;
    if (hi > len)
      hi = len;
  } else {
    lo = a && !json_is_null(a) ? (long long)num(a) : len - 1;
    hi = b && !json_is_null(b) ? (long long)num(b) : -len - 1;
    if (lo < 0)
      lo = lo + len < -1 ? -1 : lo + len;
    if (hi < 0)
      hi = hi + len < -1 ? -1 : hi + len;
    if (lo >= len)
      lo = len - 1;
    if (hi >= len)
      hi = len - 1;
  }
  json_t *items = json_is_array(obj) ? json_array() : NULL;
  sbuf sb = {0};
  sb.max = r->max_output;
  const char *s = json_is_string(obj) ? json_string_value(obj) : NULL;
  size_t sn = s ? json_string_length(obj) : 0;
  for (long long i = lo; step > 0 ? i < hi : i > hi; i += step) {
    if (items) {
      json_array_append(items, json_array_get(obj, (size_t)i));
    } else {
      size_t o = u8_off(s, sn, (size_t)i);
      sb_put(&sb, s + o, u8_off(s, sn, (size_t)i + 1) - o);
    }
  }
  if (items)
    return items;
  json_t *res = str_n(sb.p ? sb.p : "", sb.n);
  free(sb.p);
  return res;
}

static int contains(json_t *hay, json_t *needle) {
  if (json_is_string(hay)) {
    if (!json_is_string(needle))
      return 0;
    return memmem(json_string_value(hay), json_string_length(hay),
                  json_string_value(needle),
                  json_string_length(needle)) != NULL;
  }
  if (json_is_array(hay)) {
    for (size_t i = 0; i < json_array_size(hay); i++)
      if (values_equal(json_array_get(hay, i), needle))
        return 1;
    return 0;
  }
  char kb[32];
  if (json_is_object(hay) && json_is_string(needle))
    return json_object_get(hay, json_string_value(needle)) != NULL;
  if (json_is_object(hay) && json_is_integer(needle))
    return json_object_get(hay, int_key(needle, kb, sizeof kb)) != NULL;
  return 0;
}

static int compare(rctx *r, json_t *a, json_t *b, int line, int *res) {
  if ((is_num(a) || json_is_boolean(a)) && (is_num(b) || json_is_boolean(b))) {
    double x = num(a), y = num(b);
    *res = x < y ? -1 : x > y;
    return 0;
  }
  if (json_is_string(a) && json_is_string(b)) {
    size_t la = json_string_length(a), lb = json_string_length(b);
    int c =
        memcmp(json_string_value(a), json_string_value(b), la < lb ? la : lb);
    *res = c ? (c < 0 ? -1 : 1) : (la < lb ? -1 : la > lb);
    return 0;
  }
  if (json_is_array(a) && json_is_array(b)) {
    size_t la = json_array_size(a), lb = json_array_size(b);
    for (size_t i = 0; i < la && i < lb; i++) {
      if (compare(r, json_array_get(a, i), json_array_get(b, i), line, res))
        return -1;
      if (*res)
        return 0;
    }
    *res = la < lb ? -1 : la > lb;
    return 0;
  }
  fail(r, line, "cannot compare %s with %s", type_name(a), type_name(b));
  return -1;
}

static json_t *arith(rctx *r, const char *op, json_t *a, json_t *b, int line) {
  int ints = (json_is_integer(a) || json_is_boolean(a)) &&
             (json_is_integer(b) || json_is_boolean(b));
  double x = num(a), y = num(b);
  long long i = (long long)x, j = (long long)y;
  if (ints) {
    i = json_is_integer(a) ? json_integer_value(a) : i;
    j = json_is_integer(b) ? json_integer_value(b) : j;
  }
  switch (op[0]) {
  case '+':
    return ints ? json_integer(i + j) : json_real(x + y);
  case '-':
    return ints ? json_integer(i - j) : json_real(x - y);
  case '*':
    if (op[1] == '*') {
      if (ints && j >= 0) {
        long long p = 1;
        for (long long k = 0; k < j && k < 64; k++)
          p *= i;
        return json_integer(p);
      }
      return json_real(pow(x, y));
    }
    return ints ? json_integer(i * j) : json_real(x * y);
  case '/':
    if (y == 0)
      return fail(r, line, "division by zero");
    if (op[1] == '/') {
      if (ints) {
        long long q = i / j;
        if ((i % j != 0) && ((i < 0) != (j < 0)))
          q--;
        return json_integer(q);
      }
      return json_real(floor(x / y));
    }
    return json_real(x / y);
  case '%':
    if (y == 0)
      return fail(r, line, "modulo by zero");
    if (ints) {
      long long m = i % j;
      if (m && ((m < 0) != (j < 0)))
        m += j;
      return json_integer(m);
    }
    return json_real(x - y * floor(x / y));
  }
  return fail(r, line, "unknown operator %s", op);
}

/* Python printf-style formatting: fmt % args, conversions s r d i f e g x
 * with flags, width and precision, and %%. */
static json_t *py_format(rctx *r, json_t *fmt, json_t **args, size_t nargs,
                         int line) {
  const char *f = json_string_value(fmt);
  size_t n = json_string_length(fmt), used = 0;
  sbuf b = {0};
  b.max = r->max_output;
  int bad = 0;
  for (size_t i = 0; i < n && !bad; i++) {
    if (f[i] != '%') {
      bad = sb_chr(&b, f[i]);
      continue;
    }
    char spec[32] = "%";
    size_t sl = 1;
    int run = 0; /* digits in a row: width/precision at most 999 */
    while (++i < n && f[i] && strchr("-+ #0123456789.", f[i]) && sl < 20) {
      run = isdigit((unsigned char)f[i]) ? run + 1 : 0;
      if (run > 3)
        break;
      spec[sl++] = f[i];
    }
    if (i >= n || run > 3 || sl >= 20) {
      bad = 2;
      break;
    }
    char conv = f[i];
    if (conv == '%') {
      bad = sb_chr(&b, '%');
      continue;
    }
    if (used >= nargs) {
      bad = 3;
      break;
    }
    json_t *v = args[used++];
    char out[2048]; /* enough for any double with width/precision <= 999 */
    if (conv == 's' || conv == 'r') {
      sbuf t = {0};
      t.max = r->max_output;
      bad = conv == 's' ? to_str(&t, v) : py_repr(&t, v);
      spec[sl++] = 's';
      spec[sl] = 0;
      if (!bad) {
        int w = snprintf(NULL, 0, spec, t.p ? t.p : "");
        char *o = malloc((size_t)w + 1);
        if (o) {
          snprintf(o, (size_t)w + 1, spec, t.p ? t.p : "");
          bad = sb_put(&b, o, (size_t)w);
        }
        free(o);
      }
      free(t.p);
    } else if (strchr("dixX", conv) && (is_num(v) || json_is_boolean(v))) {
      spec[sl++] = 'l';
      spec[sl++] = 'l';
      spec[sl++] = conv == 'i' ? 'd' : conv;
      spec[sl] = 0;
      snprintf(out, sizeof out, spec, (long long)num(v));
      bad = sb_str(&b, out);
    } else if (strchr("feEgG", conv) && (is_num(v) || json_is_boolean(v))) {
      spec[sl++] = conv;
      spec[sl] = 0;
      snprintf(out, sizeof out, spec, num(v));
      bad = sb_str(&b, out);
    } else {
      bad = 4;
    }
  }
  if (!bad && used < nargs)
    bad = 5;
  json_t *res = bad ? NULL : str_n(b.p ? b.p : "", b.n);
  free(b.p);
  if (bad)
    return fail(r, line, "string formatting failed: %s",
                bad == 2   ? "incomplete or too wide format"
                : bad == 3 ? "not enough arguments"
                : bad == 4 ? "unsupported conversion for this value"
                : bad == 5 ? "not all arguments converted"
                           : "output limit exceeded");
  return res;
}

static json_t *binop(rctx *r, const char *op, json_t *a, json_t *b, int line) {
  if (!strcmp(op, "~")) {
    sbuf sb = {0};
    sb.max = r->max_output;
    if (to_str(&sb, a) || to_str(&sb, b)) {
      free(sb.p);
      return fail(r, line, "output limit exceeded");
    }
    json_t *s = str_n(sb.p ? sb.p : "", sb.n);
    free(sb.p);
    return s;
  }
  if (!strcmp(op, "=="))
    return json_boolean(values_equal(a, b));
  if (!strcmp(op, "!="))
    return json_boolean(!values_equal(a, b));
  if (!strcmp(op, "in"))
    return json_boolean(contains(b, a));
  if (!strcmp(op, "notin"))
    return json_boolean(!contains(b, a));
  if (op[0] == '<' || op[0] == '>') {
    int c;
    if (compare(r, a, b, line, &c))
      return NULL;
    if (!strcmp(op, "<"))
      return json_boolean(c < 0);
    if (!strcmp(op, ">"))
      return json_boolean(c > 0);
    if (!strcmp(op, "<="))
      return json_boolean(c <= 0);
    return json_boolean(c >= 0);
  }
  if (!strcmp(op, "+") && json_is_string(a) && json_is_string(b))
    return binop(r, "~", a, b, line);
  if (!strcmp(op, "+") && json_is_array(a) && json_is_array(b)) {
    if (json_array_size(a) + json_array_size(b) > MAX_LIST)
      return fail(r, line, "list too long");
    json_t *c = json_copy(a);
    json_array_extend(c, b);
    return c;
  }
  if (!strcmp(op, "%") && json_is_string(a)) {
    /* a list (or tuple, the same here) supplies several arguments */
    if (json_is_array(b)) {
      size_t nb = json_array_size(b);
      json_t **v = malloc((nb ? nb : 1) * sizeof *v);
      if (!v)
        return fail(r, line, "out of memory");
      for (size_t i = 0; i < nb; i++)
        v[i] = json_array_get(b, i);
      json_t *res = py_format(r, a, v, nb, line);
      free(v);
      return res;
    }
    return py_format(r, a, &b, 1, line);
  }
  if (!strcmp(op, "*") && json_is_string(a) && json_is_integer(b)) {
    sbuf sb = {0};
    sb.max = r->max_output;
    for (long long k = 0; k < json_integer_value(b); k++)
      if (sb_put(&sb, json_string_value(a), json_string_length(a))) {
        free(sb.p);
        return fail(r, line, "output limit exceeded");
      }
    json_t *s = str_n(sb.p ? sb.p : "", sb.n);
    free(sb.p);
    return s;
  }
  if ((is_num(a) || json_is_boolean(a)) && (is_num(b) || json_is_boolean(b)))
    return arith(r, op, a, b, line);
  return fail(r, line, "unsupported operand types for %s: %s and %s", op,
              type_name(a), type_name(b));
}

/* ------------------------------------------------------------------ */
/* Tests ("x is name")                                                 */

static int run_test(rctx *r, const char *name, json_t *v, args *a, int line) {
  json_t *x = arg(a, 0, NULL);
  if (!strcmp(name, "defined"))
    return v != NULL;
  if (!strcmp(name, "undefined"))
    return v == NULL;
  if (!strcmp(name, "none"))
    return json_is_null(v);
  if (!strcmp(name, "string"))
    return json_is_string(v);
  if (!strcmp(name, "mapping"))
    return json_is_object(v) && !is_macro(v);
  if (!strcmp(name, "iterable")) /* Undefined iterates as empty */
    return !v || json_is_array(v) || json_is_string(v) ||
           (json_is_object(v) && !is_macro(v));
  if (!strcmp(name, "sequence"))
    return !v || json_is_array(v) || json_is_string(v) ||
           (json_is_object(v) && !is_macro(v));
  if (!strcmp(name, "number"))
    return is_num(v);
  if (!strcmp(name, "integer"))
    return json_is_integer(v);
  if (!strcmp(name, "float"))
    return json_is_real(v);
  if (!strcmp(name, "boolean"))
    return json_is_boolean(v);
  if (!strcmp(name, "true"))
    return json_is_true(v);
  if (!strcmp(name, "false"))
    return json_is_false(v);
  if (!strcmp(name, "callable"))
    return is_macro(v) || json_object_get(v, GLOBAL_KEY) != NULL;
  if (!strcmp(name, "equalto") || !strcmp(name, "eq") || !strcmp(name, "==") ||
      !strcmp(name, "sameas"))
    return values_equal(v, x);
  if (!strcmp(name, "ne") || !strcmp(name, "!="))
    return !values_equal(v, x);
  if (!strcmp(name, "in"))
    return contains(x, v);
  if (!strcmp(name, "lower") || !strcmp(name, "upper")) {
    if (!json_is_string(v))
      return 0;
    const char *s = json_string_value(v);
    for (size_t i = 0; i < json_string_length(v); i++)
      if (name[0] == 'l' ? isupper((unsigned char)s[i])
                         : islower((unsigned char)s[i]))
        return 0;
    return 1;
  }
  if (!strcmp(name, "odd") || !strcmp(name, "even")) {
    if (!json_is_integer(v))
      return 0;
    long long i = json_integer_value(v);
    return name[0] == 'o' ? (i % 2 != 0) : (i % 2 == 0);
  }
  if (!strcmp(name, "divisibleby")) {
    if (!json_is_integer(v) || !json_is_integer(x) || !json_integer_value(x))
      return 0;
    return json_integer_value(v) % json_integer_value(x) == 0;
  }
  static const char *cmp[][2] = {{"gt", ">"},  {"lt", "<"}, {"ge", ">="},
                                 {"le", "<="}, {">", ">"},  {"<", "<"},
                                 {">=", ">="}, {"<=", "<="}};
  for (size_t i = 0; i < sizeof cmp / sizeof *cmp; i++)
    if (!strcmp(name, cmp[i][0])) {
      json_t *b = binop(r, cmp[i][1], v, x, line);
      int res = json_is_true(b);
      json_decref(b);
      return r->failed ? -1 : res;
    }
  fail(r, line, "unknown test '%s'", name);
  return -1;
}

/* ------------------------------------------------------------------ */
/* String helpers                                                      */

static json_t *map_case(json_t *v, int mode) {
  /* mode (ASCII letters only): 'l' lower, 'u' upper, 'c' capitalize,
   * 't' Python str.title() (upper after a non-letter), 'T' Jinja2's title
   * filter (upper at the start of each run after "-", whitespace or one
   * of "({[<") */
  size_t n = json_string_length(v);
  char *s = malloc(n + 1);
  if (!s)
    return NULL;
  memcpy(s, json_string_value(v), n + 1);
  int prev_alpha = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (mode == 'l')
      s[i] = (char)tolower(c);
    else if (mode == 'u')
      s[i] = (char)toupper(c);
    else if (mode == 't' || mode == 'T')
      s[i] = (char)(prev_alpha ? tolower(c) : toupper(c));
    else
      s[i] = (char)(i == 0 ? toupper(c) : tolower(c));
    if (mode == 'T')
      prev_alpha = !(is_ws((char)c) || (c && strchr("-({[<", c)));
    else
      prev_alpha = isalpha(c) || c >= 0x80;
  }
  json_t *r = str_n(s, n);
  free(s);
  return r;
}

static json_t *strip(json_t *v, json_t *chars, int left, int right) {
  const char *s = json_string_value(v);
  const char *set = json_is_string(chars) ? json_string_value(chars) : NULL;
  size_t a = 0, b = json_string_length(v);
#define STRIP_HIT(c) (set ? (c) && strchr(set, (c)) != NULL : is_ws(c))
  while (left && a < b && STRIP_HIT(s[a]))
    a++;
  while (right && b > a && STRIP_HIT(s[b - 1]))
    b--;
#undef STRIP_HIT
  return str_n(s + a, b - a);
}

static json_t *replace(json_t *v, json_t *from, json_t *to, long long count) {
  const char *s = json_string_value(v), *f = json_string_value(from),
             *t = json_string_value(to);
  size_t n = json_string_length(v), fn = json_string_length(from),
         tn = json_string_length(to);
  sbuf b = {0};
  b.max = (size_t)-1;
  size_t i = 0;
  long long done = 0;
  while (i <= n) {
    const char *hit = (count < 0 || done < count)
                          ? (fn ? memmem(s + i, n - i, f, fn) : s + i)
                          : NULL;
    if (!hit)
      break;
    size_t h = (size_t)(hit - s);
    sb_put(&b, s + i, h - i);
    sb_put(&b, t, tn);
    done++;
    if (!fn) {
      if (h < n)
        sb_put(&b, s + h, 1);
      i = h + 1;
    } else {
      i = h + fn;
    }
  }
  if (i < n)
    sb_put(&b, s + i, n - i);
  json_t *res = str_n(b.p ? b.p : "", b.n);
  free(b.p);
  return res;
}

static json_t *split(json_t *v, json_t *sep, long long maxsplit) {
  const char *s = json_string_value(v);
  size_t n = json_string_length(v), i = 0;
  json_t *out = json_array();
  if (!json_is_string(sep)) {
    while (i < n) {
      while (i < n && is_ws(s[i]))
        i++;
      if (i >= n)
        break;
      size_t j = i;
      if (maxsplit >= 0 && (long long)json_array_size(out) >= maxsplit) {
        size_t e = n;
        while (e > i && is_ws(s[e - 1]))
          e--;
        json_array_append_new(out, str_n(s + i, e - i));
        break;
      }
      while (j < n && !is_ws(s[j]))
        j++;
      json_array_append_new(out, str_n(s + i, j - i));
      i = j;
    }
    return out;
  }
  const char *f = json_string_value(sep);
  size_t fn = json_string_length(sep);
  if (!fn) {
    json_decref(out);
    return NULL;
  }
  for (;;) {
    const char *hit =
        (maxsplit < 0 || (long long)json_array_size(out) < maxsplit)
            ? memmem(s + i, n - i, f, fn)
            : NULL;
    if (!hit)
      break;
    json_array_append_new(out, str_n(s + i, (size_t)(hit - s) - i));
    i = (size_t)(hit - s) + fn;
  }
  json_array_append_new(out, str_n(s + i, n - i));
  return out;
}

static int starts_ends(json_t *v, json_t *x, int end) {
  if (json_is_array(x)) {
    for (size_t i = 0; i < json_array_size(x); i++)
      if (starts_ends(v, json_array_get(x, i), end))
        return 1;
    return 0;
  }
  if (!json_is_string(x))
    return 0;
  size_t n = json_string_length(v), m = json_string_length(x);
  if (m > n)
    return 0;
  return !memcmp(json_string_value(v) + (end ? n - m : 0), json_string_value(x),
                 m);
}

/* ------------------------------------------------------------------ */
/* Filters                                                             */

static json_t *apply_filter(rctx *r, const char *name, json_t *v, args *a,
                            int line);

/* obj.attr where attr may be dotted ("function.name") or an index. */
static json_t *attr_path(json_t *obj, json_t *attr) {
  if (json_is_integer(attr))
    return json_is_array(obj) ? json_incref(json_array_get(
                                    obj, (size_t)json_integer_value(attr)))
                              : NULL;
  if (!json_is_string(attr))
    return NULL;
  const char *p = json_string_value(attr);
  json_t *cur = obj;
  while (cur) {
    const char *dot = strchr(p, '.');
    size_t len = dot ? (size_t)(dot - p) : strlen(p);
    if (!json_is_object(cur))
      return NULL;
    cur = json_object_getn(cur, p, len);
    if (!dot)
      break;
    p = dot + 1;
  }
  return json_incref(cur);
}

/* select/reject/selectattr/rejectattr. */
static json_t *filter_select(rctx *r, json_t *v, args *a, int by_attr, int keep,
                             int line) {
  json_t *items = iter_items(r, v, line);
  if (!items)
    return NULL;
  json_t *out = json_array();
  int ti = by_attr ? 1 : 0;
  json_t *tname = arg(a, ti, NULL);
  args ta = {0};
  for (int i = ti + 1; i < a->npos && ta.npos < MAX_ARGS; i++)
    ta.pos[ta.npos++] = a->pos[i];
  for (size_t i = 0; i < json_array_size(items) && !r->failed; i++) {
    json_t *it = json_array_get(items, i);
    json_t *x = by_attr ? attr_path(it, arg(a, 0, NULL)) : json_incref(it);
    int ok = tname ? (json_is_string(tname)
                          ? run_test(r, json_string_value(tname), x, &ta, line)
                          : (fail(r, line, "test name must be a string"), -1))
                   : truthy(x);
    json_decref(x);
    if (ok >= 0 && ok == keep)
      json_array_append(out, it);
  }
  json_decref(items);
  if (r->failed) {
    json_decref(out);
    return NULL;
  }
  return out;
}

static json_t *filter_map(rctx *r, json_t *v, args *a, int line) {
  json_t *items = iter_items(r, v, line);
  if (!items)
    return NULL;
  json_t *out = json_array();
  json_t *attr = arg(a, -1, "attribute");
  json_t *def = arg(a, -1, "default");
  json_t *fname = arg(a, 0, NULL);
  if (!attr && !json_is_string(fname)) {
    json_decref(items);
    json_decref(out);
    return fail(r, line, "map needs attribute= or a filter name");
  }
  args fa = {0};
  for (int i = 1; i < a->npos && fa.npos < MAX_ARGS; i++)
    fa.pos[fa.npos++] = a->pos[i];
  for (size_t i = 0; i < json_array_size(items) && !r->failed; i++) {
    json_t *it = json_array_get(items, i), *x;
    if (attr) {
      x = attr_path(it, attr);
      if (!x && def)
        x = json_incref(def);
    } else {
      x = apply_filter(r, json_string_value(fname), it, &fa, line);
    }
    json_array_append_new(out, x ? x : json_null());
  }
  json_decref(items);
  if (r->failed) {
    json_decref(out);
    return NULL;
  }
  return out;
}

/* Insertion-stable merge sort helpers over a json array copy. */
static int sort_less(json_t *x, json_t *y, json_t *attr, int ci, int *err) {
  json_t *a = attr ? attr_path(x, attr) : json_incref(x);
  json_t *b = attr ? attr_path(y, attr) : json_incref(y);
  int res = 0;
  if (ci && json_is_string(a) && json_is_string(b)) {
    json_t *la = map_case(a, 'l'), *lb = map_case(b, 'l');
    res = strcmp(json_string_value(la), json_string_value(lb)) < 0;
    json_decref(la);
    json_decref(lb);
  } else if ((is_num(a) || json_is_boolean(a)) &&
             (is_num(b) || json_is_boolean(b))) {
    res = num(a) < num(b);
  } else if (json_is_string(a) && json_is_string(b)) {
    res = strcmp(json_string_value(a), json_string_value(b)) < 0;
  } else {
    *err = 1;
  }
  json_decref(a);
  json_decref(b);
  return res;
}

static json_t *sorted(rctx *r, json_t *items, json_t *attr, int ci, int rev,
                      int line) {
  size_t n = json_array_size(items);
  json_t **v = malloc((n ? n : 1) * sizeof *v);
  if (!v)
    return fail(r, line, "out of memory");
  for (size_t i = 0; i < n; i++)
    v[i] = json_array_get(items, i);
  int err = 0;
  for (size_t i = 1; i < n; i++) { /* stable insertion sort */
    json_t *k = v[i];
    size_t j = i;
    while (j > 0 && (rev ? sort_less(v[j - 1], k, attr, ci, &err)
                         : sort_less(k, v[j - 1], attr, ci, &err))) {
      v[j] = v[j - 1];
      j--;
    }
    v[j] = k;
  }
  json_t *out = json_array();
  for (size_t i = 0; i < n; i++)
    json_array_append(out, v[i]);
  free(v);
  if (err) {
    json_decref(out);
    return fail(r, line, "cannot sort values of different types");
  }
  return out;
}

static json_t *filter_indent(json_t *v, args *a) {
  json_t *w = arg(a, 0, "width");
  int first = truthy(arg(a, 1, "first")), blank = truthy(arg(a, 2, "blank"));
  sbuf pad = {0}, b = {0};
  pad.max = b.max = (size_t)-1;
  if (json_is_string(w))
    sb_put(&pad, json_string_value(w), json_string_length(w));
  else
    for (long long i = 0; i < (w ? (long long)num(w) : 4) && i < 256; i++)
      sb_chr(&pad, ' ');
  const char *s = json_string_value(v);
  size_t n = json_string_length(v), i = 0;
  int lineno = 0;
  while (i <= n) {
    const char *nl = memchr(s + i, '\n', n - i);
    size_t e = nl ? (size_t)(nl - s) : n;
    int empty = e == i;
    if ((lineno > 0 || first) && (!empty || blank) && pad.n)
      sb_put(&b, pad.p, pad.n);
    sb_put(&b, s + i, e - i);
    if (!nl)
      break;
    sb_chr(&b, '\n');
    i = e + 1;
    lineno++;
  }
  json_t *res = str_n(b.p ? b.p : "", b.n);
  free(pad.p);
  free(b.p);
  return res;
}

static json_t *html_escape(json_t *v) {
  sbuf b = {0};
  b.max = (size_t)-1;
  const char *s = json_string_value(v);
  for (size_t i = 0; i < json_string_length(v); i++) {
    switch (s[i]) {
    case '&':
      sb_str(&b, "&amp;");
      break;
    case '<':
      sb_str(&b, "&lt;");
      break;
    case '>':
      sb_str(&b, "&gt;");
      break;
    case '"':
      sb_str(&b, "&#34;");
      break;
    case '\'':
      sb_str(&b, "&#39;");
      break;
    default:
      sb_chr(&b, s[i]);
    }
  }
  json_t *res = str_n(b.p ? b.p : "", b.n);
  free(b.p);
  return res;
}

static json_t *to_int(json_t *v, json_t *def) {
  if (json_is_integer(v))
    return json_incref(v);
  if (json_is_real(v))
    return json_integer((json_int_t)json_real_value(v));
  if (json_is_boolean(v))
    return json_integer(json_is_true(v));
  if (json_is_string(v)) {
    char *end;
    const char *s = json_string_value(v);
    long long i = strtoll(s, &end, 10);
    while (is_ws(*end))
      end++;
    if (end != s && !*end)
      return json_integer(i);
    double d = strtod(s, &end);
    while (is_ws(*end))
      end++;
    if (end != s && !*end)
      return json_integer((json_int_t)d);
  }
  return def ? json_incref(def) : json_integer(0);
}

static json_t *to_float(json_t *v, json_t *def) {
  if (is_num(v) || json_is_boolean(v))
    return json_real(num(v));
  if (json_is_string(v)) {
    char *end;
    double d = strtod(json_string_value(v), &end);
    while (is_ws(*end))
      end++;
    if (end != json_string_value(v) && !*end)
      return json_real(d);
  }
  return def ? json_incref(def) : json_real(0.0);
}

static json_t *apply_filter(rctx *r, const char *name, json_t *v, args *a,
                            int line) {
  json_t *a0 = arg(a, 0, NULL);
#define F(s) (!strcmp(name, s))
#define NEED_STR()                                                             \
  do {                                                                         \
    if (!json_is_string(v)) {                                                  \
      json_t *sv_ = stringify(r, v, line);                                     \
      if (!sv_)                                                                \
        return NULL;                                                           \
      json_t *res_ = apply_filter(r, name, sv_, a, line);                      \
      json_decref(sv_);                                                        \
      return res_;                                                             \
    }                                                                          \
  } while (0)
  if (F("attr")) {
    json_t *nm = arg(a, 0, NULL);
    return json_is_string(nm) && json_is_object(v) && !is_macro(v)
               ? json_incref(json_object_get(v, json_string_value(nm)))
               : NULL;
  }
  if (F("format")) {
    if (!json_is_string(v))
      return fail(r, line, "format filter needs a format string");
    return py_format(r, v, a->pos, (size_t)a->npos, line);
  }
  if (F("safe"))
    return json_incref(v);
  if (F("default") || F("d")) {
    json_t *def = arg(a, 0, "default_value");
    int boolean = truthy(arg(a, 1, "boolean"));
    if (!v || (boolean && !truthy(v)))
      return def ? json_incref(def) : str("");
    return json_incref(v);
  }
  if (F("length") || F("count")) {
    long long n = length_of(v);
    if (n < 0)
      return fail(r, line, "object of type %s has no length", type_name(v));
    return json_integer(n);
  }
  if (F("string"))
    return v ? stringify(r, v, line) : str("");
  if (F("tojson")) {
    json_t *ind = arg(a, 1, "indent"), *seps = arg(a, 2, "separators");
    json_t *asc = arg(a, 0, "ensure_ascii");
    jdump o = {ind && !json_is_null(ind) ? (int)num(ind) : -1,
               truthy(arg(a, 3, "sort_keys")), truthy(asc), ", ", ": "};
    /* positional order is transformers' tojson(x, ensure_ascii, indent,
     * separators, sort_keys), not Jinja2's tojson(indent) */
    if (o.indent > 64)
      o.indent = 64;
    if (o.indent >= 0)
      o.item_sep = ",";
    if (json_is_array(seps) && json_array_size(seps) == 2 &&
        json_is_string(json_array_get(seps, 0)) &&
        json_is_string(json_array_get(seps, 1))) {
      o.item_sep = json_string_value(json_array_get(seps, 0));
      o.key_sep = json_string_value(json_array_get(seps, 1));
    }
    sbuf b = {0};
    b.max = r->max_output;
    if (dump_json(&b, v, &o, 0)) {
      free(b.p);
      return fail(r, line, "output limit exceeded");
    }
    json_t *res = str_n(b.p ? b.p : "", b.n);
    free(b.p);
    return res;
  }
  if (F("trim")) {
    NEED_STR();
    return strip(v, arg(a, 0, "chars"), 1, 1);
  }
  if (F("lower") || F("upper") || F("title") || F("capitalize")) {
    NEED_STR();
    return map_case(v, F("lower")   ? 'l'
                       : F("upper") ? 'u'
                       : F("title") ? 'T'
                                    : 'c');
  }
  if (F("replace")) {
    NEED_STR();
    json_t *from = arg(a, 0, "old"), *to = arg(a, 1, "new"),
           *c = arg(a, 2, "count");
    if (!json_is_string(from) || !json_is_string(to))
      return fail(r, line, "replace needs two strings");
    return replace(v, from, to, c ? (long long)num(c) : -1);
  }
  if (F("e") || F("escape")) {
    NEED_STR();
    return html_escape(v);
  }
  if (F("indent")) {
    NEED_STR();
    return filter_indent(v, a);
  }
  if (F("wordcount")) {
    NEED_STR();
    json_t *w = split(v, NULL, -1);
    json_t *res = json_integer((json_int_t)json_array_size(w));
    json_decref(w);
    return res;
  }
  if (F("int"))
    return to_int(v, arg(a, 0, "default"));
  if (F("float"))
    return to_float(v, arg(a, 0, "default"));
  if (F("abs")) {
    if (json_is_integer(v))
      return json_integer(llabs(json_integer_value(v)));
    if (is_num(v))
      return json_real(fabs(num(v)));
    return fail(r, line, "abs of a %s", type_name(v));
  }
  if (F("round")) {
    json_t *p = arg(a, 0, "precision"), *m = arg(a, 1, "method");
    const char *meth = json_is_string(m) ? json_string_value(m) : "common";
    int prec = p ? (int)num(p) : 0;
    if (!is_num(v) && !json_is_boolean(v))
      return fail(r, line, "round of a %s", type_name(v));
    if (prec < 0 || prec > 30)
      return fail(r, line, "round precision out of range");
    if (!strcmp(meth, "common")) { /* Python round(): exact value, ties even */
      if (json_is_integer(v))
        return json_incref(v);
      char buf[400];
      snprintf(buf, sizeof buf, "%.*f", prec, num(v));
      return json_real(strtod(buf, NULL));
    }
    double scale = pow(10, prec), x = num(v) * scale;
    return json_real((!strcmp(meth, "ceil") ? ceil(x) : floor(x)) / scale);
  }
  if (F("first") || F("last")) {
    json_t *items = iter_items(r, v, line);
    if (!items)
      return NULL;
    size_t n = json_array_size(items);
    json_t *res =
        n ? json_incref(json_array_get(items, F("first") ? 0 : n - 1)) : NULL;
    json_decref(items);
    return res;
  }
  if (F("list")) {
    json_t *items = iter_items(r, v, line);
    json_t *res = items ? json_copy(items) : NULL;
    json_decref(items);
    return res;
  }
  if (F("reverse")) {
    if (json_is_string(v)) {
      json_t *m1 = json_integer(-1);
      json_t *res = do_slice(r, v, NULL, NULL, m1, line);
      json_decref(m1);
      return res;
    }
    json_t *items = iter_items(r, v, line);
    if (!items)
      return NULL;
    json_t *res = json_array();
    for (size_t i = json_array_size(items); i > 0; i--)
      json_array_append(res, json_array_get(items, i - 1));
    json_decref(items);
    return res;
  }
  if (F("join")) {
    json_t *items = iter_items(r, v, line), *sep = arg(a, 0, "d"),
           *attr = arg(a, 1, "attribute");
    if (!items)
      return NULL;
    sbuf b = {0};
    b.max = r->max_output;
    int bad = 0;
    for (size_t i = 0; i < json_array_size(items); i++) {
      json_t *x = json_array_get(items, i);
      json_t *y = attr ? attr_path(x, attr) : json_incref(x);
      if (i && sep)
        bad |= to_str(&b, sep);
      bad |= to_str(&b, y);
      json_decref(y);
    }
    json_decref(items);
    json_t *res = bad ? fail(r, line, "output limit exceeded")
                      : str_n(b.p ? b.p : "", b.n);
    free(b.p);
    return res;
  }
  if (F("items")) {
    json_t *out = json_array();
    if (!v)
      return out;
    if (!json_is_object(v)) {
      json_decref(out);
      return fail(r, line, "items of a %s", type_name(v));
    }
    const char *k;
    json_t *x;
    json_object_foreach(v, k, x) {
      if (k[0] == '\x01')
        continue;
      json_array_append_new(out, json_pack("[oO]", key_value(k), x));
    }
    return out;
  }
  if (F("dictsort")) {
    json_t *it = apply_filter(r, "items", v, a, line);
    if (!it)
      return NULL;
    json_t *zero = json_integer(
        truthy(arg(a, 1, "by")) && json_is_string(arg(a, 1, "by")) &&
        !strcmp(json_string_value(arg(a, 1, "by")), "value"));
    json_t *res = sorted(r, it, zero, !truthy(arg(a, 0, "case_sensitive")),
                         truthy(arg(a, 2, "reverse")), line);
    json_decref(zero);
    json_decref(it);
    return res;
  }
  if (F("sort")) {
    json_t *items = iter_items(r, v, line);
    if (!items)
      return NULL;
    json_t *res = sorted(r, items, arg(a, 2, "attribute"),
                         !truthy(arg(a, 1, "case_sensitive")),
                         truthy(arg(a, 0, "reverse")), line);
    json_decref(items);
    return res;
  }
  if (F("unique")) {
    json_t *items = iter_items(r, v, line);
    if (!items)
      return NULL;
    json_t *out = json_array();
    for (size_t i = 0; i < json_array_size(items); i++)
      if (!contains(out, json_array_get(items, i)))
        json_array_append(out, json_array_get(items, i));
    json_decref(items);
    return out;
  }
  if (F("batch")) {
    json_t *items = iter_items(r, v, line);
    long long sz = a0 ? (long long)num(a0) : 0;
    if (!items)
      return NULL;
    if (sz <= 0) {
      json_decref(items);
      return fail(r, line, "batch size must be positive");
    }
    json_t *out = json_array(), *cur = NULL;
    for (size_t i = 0; i < json_array_size(items); i++) {
      if (!cur)
        cur = json_array();
      json_array_append(cur, json_array_get(items, i));
      if ((long long)json_array_size(cur) == sz) {
        json_array_append_new(out, cur);
        cur = NULL;
      }
    }
    if (cur) {
      json_t *fill = arg(a, 1, "fill_with");
      while (fill && (long long)json_array_size(cur) < sz)
        json_array_append(cur, fill);
      json_array_append_new(out, cur);
    }
    json_decref(items);
    return out;
  }
  if (F("sum") || F("min") || F("max")) {
    json_t *items = iter_items(r, v, line);
    if (!items)
      return NULL;
    json_t *acc = F("sum") ? json_integer(0) : NULL;
    for (size_t i = 0; i < json_array_size(items) && !r->failed; i++) {
      json_t *x = json_array_get(items, i), *nx;
      if (F("sum")) {
        nx = binop(r, "+", acc, x, line);
      } else if (!acc) {
        nx = json_incref(x);
      } else {
        int c = 0;
        compare(r, x, acc, line, &c);
        nx = json_incref((F("min") ? c < 0 : c > 0) ? x : acc);
      }
      json_decref(acc);
      acc = nx;
    }
    json_decref(items);
    return acc;
  }
  if (F("selectattr") || F("rejectattr"))
    return filter_select(r, v, a, 1, F("selectattr"), line);
  if (F("select") || F("reject"))
    return filter_select(r, v, a, 0, F("select"), line);
  if (F("map"))
    return filter_map(r, v, a, line);
#undef F
#undef NEED_STR
  return fail(r, line, "unknown filter '%s'", name);
}

/* ------------------------------------------------------------------ */
/* Methods on strings, dicts and lists                                 */

static json_t *call_method(rctx *r, json_t *obj, const char *m, args *a,
                           int line) {
  json_t *a0 = arg(a, 0, NULL), *a1 = arg(a, 1, NULL);
#define M(s) (!strcmp(m, s))
  if (json_is_string(obj)) {
    if (M("startswith") || M("endswith"))
      return json_boolean(starts_ends(obj, a0, M("endswith")));
    if (M("strip"))
      return strip(obj, a0, 1, 1);
    if (M("lstrip"))
      return strip(obj, a0, 1, 0);
    if (M("rstrip"))
      return strip(obj, a0, 0, 1);
    if (M("upper"))
      return map_case(obj, 'u');
    if (M("lower"))
      return map_case(obj, 'l');
    if (M("title"))
      return map_case(obj, 't');
    if (M("capitalize"))
      return map_case(obj, 'c');
    if (M("split")) {
      json_t *ms = arg(a, 1, "maxsplit");
      json_t *res = split(obj, arg(a, 0, "sep"), ms ? (long long)num(ms) : -1);
      return res ? res : fail(r, line, "empty separator");
    }
    if (M("replace")) {
      if (!json_is_string(a0) || !json_is_string(a1))
        return fail(r, line, "replace needs two strings");
      json_t *c = arg(a, 2, NULL);
      return replace(obj, a0, a1, c ? (long long)num(c) : -1);
    }
    if (M("find") || M("index") || M("count")) {
      if (!json_is_string(a0))
        return fail(r, line, "%s needs a string", m);
      const char *s = json_string_value(obj), *f = json_string_value(a0);
      size_t n = json_string_length(obj), fn = json_string_length(a0);
      if (M("count")) {
        long long c = 0;
        for (size_t i = 0; fn && i + fn <= n;) {
          const char *h = memmem(s + i, n - i, f, fn);
          if (!h)
            break;
          c++;
          i = (size_t)(h - s) + fn;
        }
        return json_integer(c);
      }
      const char *h = memmem(s, n, f, fn);
      if (!h && M("index"))
        return fail(r, line, "substring not found");
      return json_integer(h ? (long long)u8_len(s, (size_t)(h - s)) : -1);
    }
    if (M("join")) {
      args ja = {0};
      ja.pos[0] = obj;
      ja.npos = 1;
      return apply_filter(r, "join", a0, &ja, line);
    }
    if (M("isdigit") || M("isalpha") || M("isspace")) {
      const char *s = json_string_value(obj);
      size_t n = json_string_length(obj);
      int ok = n > 0;
      for (size_t i = 0; i < n; i++)
        ok &= M("isdigit")   ? isdigit((unsigned char)s[i]) != 0
              : M("isalpha") ? isalpha((unsigned char)s[i]) != 0
                             : is_ws(s[i]);
      return json_boolean(ok);
    }
  } else if (json_is_object(obj) && !is_macro(obj)) {
    if (M("items") || M("keys") || M("values")) {
      json_t *out = json_array();
      const char *k;
      json_t *x;
      json_object_foreach(obj, k, x) {
        if (k[0] == '\x01')
          continue;
        json_array_append_new(out, M("items")
                                       ? json_pack("[oO]", key_value(k), x)
                                   : M("keys") ? key_value(k)
                                               : json_incref(x));
      }
      return out;
    }
    if (M("cycle") && json_object_get(obj, LOOP_KEY)) {
      if (!a->npos)
        return fail(r, line, "loop.cycle needs at least one value");
      long long i = json_integer_value(json_object_get(obj, "index0"));
      return json_incref(a->pos[i % a->npos]);
    }
    if (M("get")) {
      json_t *v = json_is_string(a0)
                      ? json_object_get(obj, json_string_value(a0))
                      : NULL;
      return json_incref(v ? v : a1 ? a1 : json_null());
    }
  } else if (json_is_array(obj)) {
    if (M("append")) {
      if (json_array_size(obj) >= MAX_LIST)
        return fail(r, line, "list too long");
      if (a0 && (reaches(a0, obj, 0) || too_deep(a0, 1)))
        return fail(r, line, "cannot append a list to itself");
      json_array_append(obj, a0 ? a0 : json_null());
      return json_null();
    }
    if (M("pop")) {
      size_t n = json_array_size(obj);
      if (!n)
        return fail(r, line, "pop from empty list");
      long long i = a0 ? (long long)num(a0) : (long long)n - 1;
      if (i < 0)
        i += (long long)n;
      if (i < 0 || i >= (long long)n)
        return fail(r, line, "pop index out of range");
      json_t *v = json_incref(json_array_get(obj, (size_t)i));
      json_array_remove(obj, (size_t)i);
      return v;
    }
    if (M("index") || M("count")) {
      long long c = 0;
      for (size_t i = 0; i < json_array_size(obj); i++)
        if (values_equal(json_array_get(obj, i), a0)) {
          if (M("index"))
            return json_integer((json_int_t)i);
          c++;
        }
      return M("index") ? fail(r, line, "value not in list") : json_integer(c);
    }
  }
#undef M
  return fail(r, line, "%s has no method '%s'", type_name(obj), m);
}

/* ------------------------------------------------------------------ */
/* Globals                                                             */

static json_t *call_global(rctx *r, const char *name, args *a, int line) {
  if (!strcmp(name, "raise_exception")) {
    json_t *m = arg(a, 0, NULL);
    if (!r->failed) {
      sbuf b = {0};
      b.max = sizeof r->err->msg - 1;
      to_str(&b, m);
      r->err->line = line;
      r->err->raised = 1;
      snprintf(r->err->msg, sizeof r->err->msg, "%s", b.p ? b.p : "");
      free(b.p);
    }
    r->failed = 1;
    return NULL;
  }
  if (!strcmp(name, "range")) {
    long long lo = 0, hi, st = 1;
    if (a->npos == 1) {
      hi = (long long)num(a->pos[0]);
    } else if (a->npos >= 2) {
      lo = (long long)num(a->pos[0]);
      hi = (long long)num(a->pos[1]);
      if (a->npos >= 3)
        st = (long long)num(a->pos[2]);
    } else {
      return fail(r, line, "range expects 1 to 3 arguments");
    }
    if (st == 0)
      return fail(r, line, "range step must not be zero");
    json_t *out = json_array();
    for (long long i = lo; st > 0 ? i < hi : i > hi; i += st) {
      if (json_array_size(out) >= 1000000) {
        json_decref(out);
        return fail(r, line, "range too large");
      }
      json_array_append_new(out, json_integer(i));
    }
    return out;
  }
  if (!strcmp(name, "namespace") || !strcmp(name, "dict")) {
    json_t *o = json_object();
    if (a->npos && json_is_object(a->pos[0]))
      json_object_update(o, a->pos[0]);
    for (int i = 0; i < a->nkw; i++)
      json_object_set(o, a->kwn[i], a->kw[i] ? a->kw[i] : json_null());
    if (name[0] == 'n')
      json_object_set_new(o, NS_KEY, json_true());
    return o;
  }
  if (!strcmp(name, "strftime_now")) {
    json_t *f = arg(a, 0, NULL);
    if (!json_is_string(f))
      return fail(r, line, "strftime_now needs a format string");
    time_t t = r->now ? (time_t)r->now : time(NULL);
    struct tm tm;
    char buf[256];
    gmtime_r(&t, &tm);
    size_t n = strftime(buf, sizeof buf, json_string_value(f), &tm);
    return str_n(buf, n);
  }
  return fail(r, line, "'%s' is undefined or not callable", name);
}

static int exec_body(rctx *r, node *body);

static json_t *call_macro(rctx *r, json_t *mv, args *a, int line) {
  node *m =
      (node *)(intptr_t)json_integer_value(json_object_get(mv, MACRO_KEY));
  if (r->depth >= r->max_depth)
    return fail(r, line, "macro calls nest too deeply");
  int saved_base = r->base;
  sbuf *saved_out = r->out;
  sbuf b = {0};
  b.max = r->max_output;
  r->depth++;
  r->base = r->nf;
  if (push_frame(r, line))
    goto done;
  node *params = m->a;
  for (size_t i = 0; i < params->n && !r->failed; i++) {
    json_t *v = arg(a, (int)i, params->names[i]);
    if (v) {
      json_object_set(r->frames[r->nf - 1], params->names[i], v);
    } else if (params->v[i]) {
      json_t *d = eval(r, params->v[i]);
      if (d)
        json_object_set_new(r->frames[r->nf - 1], params->names[i], d);
    }
  }
  r->out = &b;
  if (!r->failed)
    exec_body(r, m->b);
  r->ctl = 0;
  r->out = saved_out;
  pop_frame(r);
done:
  r->base = saved_base;
  r->depth--;
  json_t *res = r->failed ? NULL : str_n(b.p ? b.p : "", b.n);
  free(b.p);
  return res;
}

static json_t *eval_call(rctx *r, node *n) {
  node *c = n->a;
  json_t *obj = NULL, *fn = NULL, *res = NULL;
  args a;
  if (c->kind == N_ATTR) {
    obj = eval(r, c->a);
    if (r->failed)
      return NULL;
    if (json_is_object(obj))
      fn = json_object_get(obj, c->s);
    if (!obj) {
      json_decref(obj);
      return fail(r, n->line, "cannot call method '%s' of an undefined value",
                  c->s);
    }
  } else if (c->kind == N_NAME) {
    fn = lookup(r, c->s);
    if (fn && !is_macro(fn) && !json_object_get(fn, GLOBAL_KEY))
      return fail(r, n->line, "'%s' is not callable", c->s);
  } else {
    obj = eval(r, c);
    if (r->failed)
      return NULL;
    if (!is_macro(obj) && !json_object_get(obj, GLOBAL_KEY)) {
      json_decref(obj);
      return fail(r, n->line, "value of type %s is not callable",
                  type_name(obj));
    }
    fn = obj;
  }
  if (eval_args(r, n, 0, &a) == 0) {
    if (is_macro(fn))
      res = call_macro(r, fn, &a, n->line);
    else if (json_is_string(json_object_get(fn, GLOBAL_KEY)))
      res = call_global(r, json_string_value(json_object_get(fn, GLOBAL_KEY)),
                        &a, n->line);
    else if (c->kind == N_ATTR)
      res = call_method(r, obj, c->s, &a, n->line);
    else
      res = call_global(r, c->s, &a, n->line);
  }
  free_args(&a);
  json_decref(obj);
  return res;
}

static json_t *eval_seq(rctx *r, node *n) {
  json_t *out = n->kind == N_DICT ? json_object() : json_array();
  for (size_t i = 0; i < n->n && !r->failed; i++) {
    if (n->kind == N_DICT) {
      json_t *k = eval(r, n->v[i]->v[0]);
      json_t *v = eval(r, n->v[i]->v[1]);
      if (v && too_deep(v, 1))
        fail(r, n->line, "value nests too deeply");
      char kb[32];
      json_t *ks = r->failed            ? NULL
                   : json_is_integer(k) ? str(int_key(k, kb, sizeof kb))
                                        : stringify(r, k, n->line);
      if (ks && !json_is_integer(k) &&
          (json_string_value(ks)[0] == '\x01' ||
           json_string_value(ks)[0] == INT_KEY)) {
        json_decref(ks);
        ks = NULL;
        fail(r, n->line, "dict keys must not start with \\x01 or \\x02");
      }
      if (ks)
        json_object_set(out, json_string_value(ks), v ? v : json_null());
      json_decref(ks);
      json_decref(k);
      json_decref(v);
    } else {
      json_t *v = eval(r, n->v[i]);
      if (v && too_deep(v, 1))
        fail(r, n->line, "value nests too deeply");
      json_array_append_new(out, v ? v : json_null());
    }
  }
  if (r->failed) {
    json_decref(out);
    return NULL;
  }
  return out;
}

static json_t *eval_node(rctx *r, node *n) {
  if (r->failed)
    return NULL;
  if (++r->steps > r->max_steps)
    return fail(r, n->line, "template too expensive: step limit reached");
  json_t *x = NULL, *y = NULL, *z = NULL, *w = NULL, *res = NULL;
  args a;
  memset(&a, 0, sizeof a);
  switch (n->kind) {
  case N_LIT: /* a copy: the template is shared read-only between threads */
    return json_copy(n->lit);
  case N_NAME: {
    json_t *v = lookup(r, n->s);
    return v ? json_incref(v) : global_value(n->s);
  }
  case N_ATTR:
    x = eval(r, n->a);
    res = get_attr(x, n->s);
    break;
  case N_ITEM:
    x = eval(r, n->a);
    y = eval(r, n->b);
    if (!r->failed)
      res = get_item(r, x, y, n->line);
    break;
  case N_SLICE:
    x = eval(r, n->a);
    y = n->b ? eval(r, n->b) : NULL;
    z = n->c ? eval(r, n->c) : NULL;
    w = n->d ? eval(r, n->d) : NULL;
    if (!r->failed)
      res = do_slice(r, x, y, z, w, n->line);
    break;
  case N_CALL:
    return eval_call(r, n);
  case N_FILTER:
    x = eval(r, n->a);
    if (!r->failed && eval_args(r, n, 0, &a) == 0)
      res = apply_filter(r, n->s, x, &a, n->line);
    free_args(&a);
    break;
  case N_TEST: {
    x = eval(r, n->a);
    if (!r->failed && eval_args(r, n, 0, &a) == 0) {
      int t = run_test(r, n->s, x, &a, n->line);
      if (t >= 0)
        res = json_boolean(n->neg ? !t : t);
    }
    free_args(&a);
    break;
  }
  case N_NEG:
  case N_POS:
    x = eval(r, n->a);
    if (r->failed)
      break;
    if (!is_num(x) && !json_is_boolean(x)) {
      res = fail(r, n->line, "bad operand type for unary %s: %s",
                 n->kind == N_NEG ? "-" : "+", type_name(x));
    } else if (n->kind == N_POS) {
      res = json_incref(x);
    } else {
      res = json_is_real(x) ? json_real(-json_real_value(x))
                            : json_integer(-(json_int_t)num(x));
    }
    break;
  case N_NOT:
    x = eval(r, n->a);
    if (!r->failed)
      res = json_boolean(!truthy(x));
    break;
  case N_AND:
  case N_OR:
    x = eval(r, n->a);
    if (r->failed)
      break;
    if (truthy(x) == (n->kind == N_OR))
      return x;
    json_decref(x);
    return eval(r, n->b);
  case N_BIN:
    x = eval(r, n->a);
    y = eval(r, n->b);
    if (!r->failed)
      res = binop(r, n->s, x, y, n->line);
    break;
  case N_CHAIN:
    x = eval(r, n->v[0]);
    res = json_true();
    for (size_t i = 1; i < n->n && !r->failed && json_is_true(res); i++) {
      y = eval(r, n->v[i]);
      json_t *c = r->failed ? NULL : binop(r, n->names[i], x, y, n->line);
      json_decref(res);
      res = json_boolean(truthy(c));
      json_decref(c);
      json_decref(x);
      x = y;
      y = NULL;
    }
    break;
  case N_COND:
    x = eval(r, n->b);
    if (r->failed)
      break;
    res = truthy(x) ? eval(r, n->a) : n->c ? eval(r, n->c) : NULL;
    break;
  case N_LIST:
  case N_TUPLE:
  case N_DICT:
    return eval_seq(r, n);
  default:
    return fail(r, n->line, "internal error: statement used as expression");
  }
  json_decref(x);
  json_decref(y);
  json_decref(z);
  json_decref(w);
  if (r->failed) {
    json_decref(res);
    return NULL;
  }
  return res;
}

/* Bounds C recursion through nested expressions and macro calls. */
static json_t *eval(rctx *r, node *n) {
  if (r->edepth >= MAX_EVAL_DEPTH)
    return fail(r, n->line, "expression evaluation nests too deeply");
  r->edepth++;
  json_t *v = eval_node(r, n);
  r->edepth--;
  return v;
}

/* ------------------------------------------------------------------ */
/* Statements                                                          */

/* Binds target (a name, ns.attr or a tuple of names) to v in frame. */
static int assign(rctx *r, node *t, json_t *v, json_t *frame) {
  if (t->kind == N_NAME) {
    if (v)
      json_object_set(frame, t->s, v);
    else
      json_object_del(frame, t->s);
    return 0;
  }
  if (t->kind == N_ATTR) {
    json_t *obj = eval(r, t->a);
    if (!json_is_object(obj) || is_macro(obj)) {
      json_decref(obj);
      fail(r, t->line, "cannot assign attribute '%s' on a %s", t->s,
           type_name(obj));
      return -1;
    }
    const char *why = !v ? NULL
                      : reaches(v, obj, 0)
                          ? "cannot store an object inside itself"
                      : too_deep(v, 1) ? "value nests too deeply"
                                       : NULL;
    if (why)
      fail(r, t->line, "%s", why);
    else if (v)
      json_object_set(obj, t->s, v);
    else
      json_object_del(obj, t->s);
    json_decref(obj);
    if (why)
      return -1;
    return 0;
  }
  if (t->kind == N_TUPLE) { /* unpacks any iterable of the right length */
    json_t *items = json_is_string(v) || (json_is_object(v) && !is_macro(v))
                        ? iter_items(r, v, t->line)
                        : json_incref(v);
    int rc = 0;
    if (!json_is_array(items) || json_array_size(items) != t->n) {
      fail(r, t->line, "cannot unpack %s into %zu names", type_name(v), t->n);
      rc = -1;
    }
    for (size_t i = 0; i < t->n && !rc; i++)
      rc = assign(r, t->v[i], json_array_get(items, i), frame);
    json_decref(items);
    return rc;
  }
  fail(r, t->line, "cannot assign to this expression");
  return -1;
}

static json_t *loop_obj(json_t *items, size_t i, size_t n) {
  json_t *o = json_object();
  json_object_set_new(o, "index", json_integer((json_int_t)i + 1));
  json_object_set_new(o, "index0", json_integer((json_int_t)i));
  json_object_set_new(o, "revindex", json_integer((json_int_t)(n - i)));
  json_object_set_new(o, "revindex0", json_integer((json_int_t)(n - i - 1)));
  json_object_set_new(o, "first", json_boolean(i == 0));
  json_object_set_new(o, "last", json_boolean(i + 1 == n));
  json_object_set_new(o, "length", json_integer((json_int_t)n));
  json_object_set_new(o, "depth", json_integer(1));
  json_object_set_new(o, "depth0", json_integer(0));
  json_object_set_new(o, LOOP_KEY, json_true());
  if (i > 0)
    json_object_set(o, "previtem", json_array_get(items, i - 1));
  if (i + 1 < n)
    json_object_set(o, "nextitem", json_array_get(items, i + 1));
  return o;
}

static int exec_for(rctx *r, node *n) {
  json_t *seq = eval(r, n->b);
  if (r->failed)
    return -1;
  json_t *items = iter_items(r, seq, n->line);
  json_decref(seq);
  if (!items)
    return -1;
  if (push_frame(r, n->line)) {
    json_decref(items);
    return -1;
  }
  json_t *frame = r->frames[r->nf - 1];
  if (n->c) { /* "for x in xs if cond": filter first, loop.length counts kept */
    json_t *kept = json_array();
    for (size_t i = 0; i < json_array_size(items) && !r->failed; i++) {
      if (assign(r, n->a, json_array_get(items, i), frame))
        break;
      json_t *c = eval(r, n->c);
      if (truthy(c))
        json_array_append(kept, json_array_get(items, i));
      json_decref(c);
    }
    json_decref(items);
    items = kept;
  }
  size_t cnt = json_array_size(items);
  for (size_t i = 0; i < cnt && !r->failed; i++) {
    if (++r->steps > r->max_steps) {
      fail(r, n->line, "template too expensive: step limit reached");
      break;
    }
    json_object_clear(frame); /* each iteration is a fresh scope (Jinja2) */
    if (assign(r, n->a, json_array_get(items, i), frame))
      break;
    json_object_set_new(frame, "loop", loop_obj(items, i, cnt));
    exec_body(r, n->v[0]);
    if (r->ctl == 1) {
      r->ctl = 0;
      break;
    }
    r->ctl = 0;
  }
  pop_frame(r);
  json_decref(items);
  if (!r->failed && cnt == 0 && n->d)
    exec_body(r, n->d);
  return r->failed ? -1 : 0;
}

static int exec_stmt(rctx *r, node *n) {
  if (++r->steps > r->max_steps) {
    fail(r, n->line, "template too expensive: step limit reached");
    return -1;
  }
  switch (n->kind) {
  case N_TEXT:
    if (sb_put(r->out, n->s, n->slen))
      fail(r, n->line, "output limit exceeded");
    break;
  case N_OUT: {
    json_t *v = eval(r, n->a);
    if (!r->failed && to_str(r->out, v))
      fail(r, n->line, "output limit exceeded");
    json_decref(v);
    break;
  }
  case N_IF: {
    json_t *c = eval(r, n->a);
    int t = truthy(c);
    json_decref(c);
    if (r->failed)
      break;
    if (t)
      exec_body(r, n->b);
    else if (n->c)
      exec_body(r, n->c);
    break;
  }
  case N_FOR:
    return exec_for(r, n);
  case N_SET: {
    json_t *v = eval(r, n->b);
    if (!r->failed)
      assign(r, n->a, v, r->frames[r->nf - 1]);
    json_decref(v);
    break;
  }
  case N_SETBLOCK: {
    sbuf *saved = r->out, b = {0};
    b.max = r->max_output;
    r->out = &b;
    exec_body(r, n->b);
    r->out = saved;
    if (!r->failed) {
      json_t *v = str_n(b.p ? b.p : "", b.n);
      assign(r, n->a, v, r->frames[r->nf - 1]);
      json_decref(v);
    }
    free(b.p);
    break;
  }
  case N_MACRO: {
    json_t *m = json_object();
    json_object_set_new(m, MACRO_KEY, json_integer((json_int_t)(intptr_t)n));
    json_object_set_new(r->frames[r->nf - 1], n->s, m);
    break;
  }
  case N_BREAK:
    r->ctl = 1;
    break;
  case N_CONTINUE:
    r->ctl = 2;
    break;
  case N_DO:
    json_decref(eval(r, n->a));
    break;
  case N_BODY:
    return exec_body(r, n);
  default:
    fail(r, n->line, "internal error: expression used as statement");
  }
  return r->failed ? -1 : 0;
}

static int exec_body(rctx *r, node *body) {
  for (size_t i = 0; i < body->n && !r->failed && !r->ctl; i++)
    exec_stmt(r, body->v[i]);
  return r->failed ? -1 : 0;
}

/* ------------------------------------------------------------------ */
/* Entry points                                                        */

/* Whether v holds a key starting with \x01 (reserved for macros and other
 * interpreter objects, which a context must not be able to forge). */
static int hidden_keys(json_t *v) {
  if (json_is_array(v)) {
    for (size_t i = 0; i < json_array_size(v); i++)
      if (hidden_keys(json_array_get(v, i)))
        return 1;
  } else if (json_is_object(v)) {
    const char *k;
    json_t *x;
    json_object_foreach(v, k, x) {
      if (k[0] == '\x01' || k[0] == INT_KEY || hidden_keys(x))
        return 1;
    }
  }
  return 0;
}

int jinja_render(const jinja_template *t, json_t *ctx,
                 const jinja_options *opts, char **out, size_t *out_len,
                 jinja_error *err) {
  jinja_error unused; /* err is optional (jinja.h) */
  if (!err)
    err = &unused;
  memset(err, 0, sizeof *err);
  *out = NULL;
  if (ctx && !json_is_object(ctx)) {
    set_err(err, 0, "render context must be a JSON object");
    return -1;
  }
  if (ctx && hidden_keys(ctx)) {
    set_err(err, 0, "render context keys must not start with \\x01");
    return -1;
  }
  rctx *r = calloc(1, sizeof *r);
  if (!r) {
    set_err(err, 0, "out of memory");
    return -1;
  }
  sbuf b = {0};
  r->max_output = opts && opts->max_output ? opts->max_output : 16u << 20;
  r->max_steps = opts && opts->max_steps ? opts->max_steps : 10000000L;
  r->max_depth = opts && opts->max_depth ? opts->max_depth : 64;
  r->now = opts ? opts->now : 0;
  b.max = r->max_output;
  r->out = &b;
  r->err = err;
  r->frames[0] = ctx ? json_deep_copy(ctx) : json_object();
  r->nf = 1;
  if (!r->frames[0]) {
    free(r);
    set_err(err, 0, "out of memory");
    return -1;
  }
  exec_body(r, t->root);
  int failed = r->failed;
  while (r->nf > 0)
    pop_frame(r);
  free(r);
  if (failed) {
    free(b.p);
    return -1;
  }
  if (!b.p)
    b.p = calloc(1, 1);
  if (!b.p) {
    set_err(err, 0, "out of memory");
    return -1;
  }
  *out = b.p;
  if (out_len)
    *out_len = b.n;
  return 0;
}

int jinja_render_string(const char *src, json_t *ctx, const jinja_options *opts,
                        char **out, jinja_error *err) {
  jinja_template *t;
  *out = NULL;
  if (jinja_parse(src, strlen(src), &t, err))
    return -1;
  int rc = jinja_render(t, ctx, opts, out, NULL, err);
  jinja_free(t);
  return rc;
}
