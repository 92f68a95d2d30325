/* Streaming multipart/form-data reader (RFC 7578). Fed the body in chunks of
 * any size, it calls back for each part's start (with its headers parsed),
 * its data (in pieces, never buffered whole) and its end. Bounded memory:
 * a fixed-size state, header lines at most MP_MAX_HEADER bytes.
 * Pure: no I/O, no allocation, no HTTP server dependency (fuzzable). */
#ifndef HEARTH_HTTP_MULTIPART_H
#define HEARTH_HTTP_MULTIPART_H

#include <stddef.h>

#define MP_MAX_BOUNDARY 70 /* RFC 2046 */
#define MP_MAX_HEADER 1024 /* one part header line */
#define MP_MAX_NAME 128
#define MP_MAX_FILENAME 256
#define MP_MAX_CTYPE 128

typedef struct mp_part {
  char name[MP_MAX_NAME];         /* Content-Disposition name= */
  char filename[MP_MAX_FILENAME]; /* filename=, "" when absent */
  char content_type[MP_MAX_CTYPE];
  int has_filename;
} mp_part;

/* Callbacks return 0 to continue; anything else stops the parse with
 * MP_ERR_ABORTED (the callback keeps its own reason). */
typedef struct mp_callbacks {
  int (*part_begin)(void *user, const mp_part *part);
  int (*part_data)(void *user, const char *data, size_t len);
  int (*part_end)(void *user);
} mp_callbacks;

enum mp_status {
  MP_OK = 0,      /* more input welcome / complete (see mp_done) */
  MP_ERR_SYNTAX,  /* malformed: see mp_error() */
  MP_ERR_ABORTED, /* a callback said stop */
};

typedef struct mp_parser {
  mp_callbacks cb;
  void *user;
  char delim[MP_MAX_BOUNDARY + 4]; /* "\r\n--" + boundary */
  size_t delim_len;
  int state;
  size_t match;             /* bytes of delim matched so far */
  char line[MP_MAX_HEADER]; /* current header line */
  size_t line_len;
  mp_part part;
  int in_part;
  int done;
  const char *err;
} mp_parser;

/* Extracts the boundary from a Content-Type header value into out (size at
 * least MP_MAX_BOUNDARY + 1). Returns 0, or -1 when the type is not
 * multipart/form-data or the boundary is missing/invalid. */
int mp_boundary_from_content_type(const char *ctype, char *out, size_t outsz);

/* Returns 0, or -1 for an empty/too long boundary. */
int mp_init(mp_parser *p, const char *boundary, const mp_callbacks *cb,
            void *user);

/* Feeds len bytes. */
enum mp_status mp_feed(mp_parser *p, const char *data, size_t len);

/* 1 once the closing delimiter was read. A body that ends before that is
 * truncated: call mp_finish to get the error. */
int mp_done(const mp_parser *p);

/* End of input: MP_OK when the body was complete, else MP_ERR_SYNTAX. */
enum mp_status mp_finish(mp_parser *p);

/* What was wrong, for a 400 message; NULL when nothing was. */
const char *mp_error(const mp_parser *p);

#endif
