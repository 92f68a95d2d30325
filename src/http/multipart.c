/* Streaming multipart/form-data reader: a byte-level state machine. The
 * delimiter "\r\n--boundary" is matched incrementally; since a boundary
 * holds no CR, a failed partial match can only restart at the current byte,
 * so bytes held back by a partial match are re-emitted from the delimiter
 * itself and nothing of the body is ever buffered. Knows nothing about
 * where the bytes come from or go. */
#include "http/multipart.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

enum {
  S_PREAMBLE,   /* before the first delimiter: discarded */
  S_AFTER,      /* right after a delimiter: "--" or padding + CRLF */
  S_AFTER_DASH, /* read one '-' of the closing "--" */
  S_AFTER_CR,   /* read CR, want LF */
  S_HEADERS,    /* part header lines */
  S_HEADER_CR,  /* read CR inside headers, want LF */
  S_BODY,       /* part data */
  S_EPILOGUE,   /* after the closing delimiter: ignored */
};

static int bchar_ok(int c) {
  return isalnum(c) || strchr("'()+_,-./:=? ", c) != NULL;
}

int mp_init(mp_parser *p, const char *boundary, const mp_callbacks *cb,
            void *user) {
  size_t n = strlen(boundary);
  memset(p, 0, sizeof *p);
  if (n == 0 || n > MP_MAX_BOUNDARY || boundary[n - 1] == ' ')
    return -1;
  for (size_t i = 0; i < n; i++)
    if (!bchar_ok((unsigned char)boundary[i]))
      return -1;
  memcpy(p->delim, "\r\n--", 4);
  memcpy(p->delim + 4, boundary, n);
  p->delim_len = n + 4;
  p->cb = *cb;
  p->user = user;
  p->state = S_PREAMBLE;
  p->match = 2; /* the body's start counts as the CRLF before "--" */
  return 0;
}

static enum mp_status fail(mp_parser *p, const char *why) {
  if (!p->err)
    p->err = why;
  return MP_ERR_SYNTAX;
}

/* ------------------------------------------------------- header parsing */

/* Copies a (possibly quoted) parameter value starting at s into out. */
static const char *param_value(const char *s, char *out, size_t outsz) {
  size_t k = 0;
  if (*s == '"') {
    for (s++; *s && *s != '"'; s++) {
      if (*s == '\\' && s[1])
        s++;
      if (k + 1 < outsz)
        out[k++] = *s;
    }
    if (*s == '"')
      s++;
  } else {
    for (; *s && *s != ';' && !isspace((unsigned char)*s); s++)
      if (k + 1 < outsz)
        out[k++] = *s;
  }
  out[k] = 0;
  return s;
}

static int parse_disposition(mp_parser *p, const char *v) {
  while (isspace((unsigned char)*v))
    v++;
  if (strncasecmp(v, "form-data", 9) != 0)
    return -1;
  v += 9;
  while (*v) {
    while (*v == ';' || isspace((unsigned char)*v))
      v++;
    const char *key = v;
    while (*v && *v != '=' && *v != ';')
      v++;
    size_t klen = (size_t)(v - key);
    while (klen && isspace((unsigned char)key[klen - 1]))
      klen--;
    if (*v != '=')
      continue;
    v++;
    while (isspace((unsigned char)*v))
      v++;
    if (klen == 4 && !strncasecmp(key, "name", 4)) {
      v = param_value(v, p->part.name, sizeof p->part.name);
    } else if (klen == 8 && !strncasecmp(key, "filename", 8)) {
      v = param_value(v, p->part.filename, sizeof p->part.filename);
      p->part.has_filename = 1;
    } else {
      char skip[8];
      v = param_value(v, skip, sizeof skip);
    }
  }
  return 0;
}

static enum mp_status header_line(mp_parser *p) {
  p->line[p->line_len] = 0;
  char *colon = strchr(p->line, ':');
  if (!colon)
    return fail(p, "malformed part header (no ':')");
  *colon = 0;
  const char *v = colon + 1;
  while (*v == ' ' || *v == '\t')
    v++;
  if (!strcasecmp(p->line, "Content-Disposition")) {
    if (parse_disposition(p, v) < 0)
      return fail(p, "part Content-Disposition is not form-data");
  } else if (!strcasecmp(p->line, "Content-Type")) {
    snprintf(p->part.content_type, sizeof p->part.content_type, "%s", v);
  }
  return MP_OK;
}

static enum mp_status headers_end(mp_parser *p) {
  if (!p->part.name[0])
    return fail(p, "part without a Content-Disposition name");
  p->in_part = 1;
  p->state = S_BODY;
  p->match = 0;
  if (p->cb.part_begin && p->cb.part_begin(p->user, &p->part))
    return MP_ERR_ABORTED;
  return MP_OK;
}

/* ------------------------------------------------------------ the body */

static enum mp_status emit(mp_parser *p, const char *d, size_t n) {
  if (n && p->state == S_BODY && p->cb.part_data &&
      p->cb.part_data(p->user, d, n))
    return MP_ERR_ABORTED;
  return MP_OK;
}

static enum mp_status delimiter_seen(mp_parser *p) {
  if (p->in_part) {
    p->in_part = 0;
    if (p->cb.part_end && p->cb.part_end(p->user))
      return MP_ERR_ABORTED;
  }
  p->state = S_AFTER;
  p->match = 0;
  return MP_OK;
}

/* Scans data for the delimiter; data before it is part data (or preamble).
 * Returns bytes consumed in *used. */
static enum mp_status scan(mp_parser *p, const char *d, size_t n,
                           size_t *used) {
  size_t i = 0, run = 0; /* run: start of pending plain data */
  enum mp_status st;
  while (i < n) {
    if (p->match == 0) {
      const char *cr = memchr(d + i, '\r', n - i);
      if (!cr) {
        i = n;
        break;
      }
      i = (size_t)(cr - d);
    }
    if (d[i] == p->delim[p->match]) {
      if (p->match == 0 && (st = emit(p, d + run, i - run)) != MP_OK)
        return st;
      p->match++;
      i++;
      run = i;
      if (p->match == p->delim_len) {
        *used = i;
        return delimiter_seen(p);
      }
      continue;
    }
    /* Mismatch: the held-back prefix was data after all. */
    if (p->match) {
      if ((st = emit(p, p->delim, p->match)) != MP_OK)
        return st;
      p->match = 0;
      run = i;
      continue; /* re-examine d[i] from a fresh start */
    }
    i++;
  }
  if (p->match == 0 && (st = emit(p, d + run, n - run)) != MP_OK)
    return st;
  *used = n;
  return MP_OK;
}

/* One byte outside the body/preamble states. */
static enum mp_status step(mp_parser *p, char c) {
  switch (p->state) {
  case S_AFTER:
    if (c == '-')
      p->state = S_AFTER_DASH;
    else if (c == '\r')
      p->state = S_AFTER_CR;
    else if (c != ' ' && c != '\t')
      return fail(p, "garbage after a multipart boundary");
    return MP_OK;
  case S_AFTER_DASH:
    if (c != '-')
      return fail(p, "garbage after a multipart boundary");
    p->state = S_EPILOGUE;
    p->done = 1;
    return MP_OK;
  case S_AFTER_CR:
    if (c != '\n')
      return fail(p, "missing line break after a multipart boundary");
    memset(&p->part, 0, sizeof p->part);
    p->line_len = 0;
    p->state = S_HEADERS;
    return MP_OK;
  case S_HEADERS:
    if (c == '\r') {
      p->state = S_HEADER_CR;
      return MP_OK;
    }
    if (p->line_len + 1 >= sizeof p->line)
      return fail(p, "multipart part header too long");
    p->line[p->line_len++] = c;
    return MP_OK;
  case S_HEADER_CR: {
    if (c != '\n')
      return fail(p, "bare CR in a multipart part header");
    enum mp_status st = MP_OK;
    if (p->line_len == 0)
      return headers_end(p);
    st = header_line(p);
    p->line_len = 0;
    p->state = S_HEADERS;
    return st;
  }
  default:
    return MP_OK;
  }
}

enum mp_status mp_feed(mp_parser *p, const char *data, size_t len) {
  size_t i = 0;
  enum mp_status st;
  if (p->err)
    return MP_ERR_SYNTAX;
  while (i < len) {
    if (p->state == S_EPILOGUE)
      return MP_OK;
    if (p->state == S_PREAMBLE || p->state == S_BODY) {
      size_t used = 0;
      st = scan(p, data + i, len - i, &used);
      i += used;
    } else {
      st = step(p, data[i++]);
    }
    if (st != MP_OK) {
      if (st == MP_ERR_ABORTED && !p->err)
        p->err = "aborted";
      return st;
    }
  }
  return MP_OK;
}

int mp_done(const mp_parser *p) {
  return p->done;
}

enum mp_status mp_finish(mp_parser *p) {
  if (p->err)
    return MP_ERR_SYNTAX;
  if (!p->done)
    return fail(p, p->state == S_PREAMBLE
                       ? "multipart body has no part (boundary not found)"
                       : "truncated multipart body (no closing boundary)");
  return MP_OK;
}

const char *mp_error(const mp_parser *p) {
  return p->err;
}

int mp_boundary_from_content_type(const char *ctype, char *out, size_t outsz) {
  if (!ctype || strncasecmp(ctype, "multipart/form-data", 19) != 0)
    return -1;
  const char *b = strcasestr(ctype, "boundary=");
  if (!b)
    return -1;
  b += 9;
  char tmp[MP_MAX_BOUNDARY + 2];
  param_value(b, tmp, sizeof tmp);
  size_t n = strlen(tmp);
  if (n == 0 || n > MP_MAX_BOUNDARY || n + 1 > outsz)
    return -1;
  memcpy(out, tmp, n + 1);
  return 0;
}
