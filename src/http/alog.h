/* The access log: one line per request, written to a file descriptor
 * (stderr) in batches. Lines gather in a buffer that is written when it
 * fills up, or by a flusher thread at most ALOG_FLUSH_MS after the first
 * line entered it, so a busy server makes one write() per few dozen
 * requests and an idle one shows every line within a moment. Knows nothing
 * about HTTP. */
#ifndef HEARTH_HTTP_ALOG_H
#define HEARTH_HTTP_ALOG_H

#include <stddef.h>

#define ALOG_FLUSH_MS 50

typedef struct alog alog;

/* NULL on failure (then log lines are written directly). */
alog *alog_start(int fd);
/* Appends one line (n bytes, with its newline). Thread-safe. l NULL: the
 * line is written directly to stderr. */
void alog_line(alog *l, const char *line, size_t n);
/* Writes what is buffered, stops the flusher and frees l. NULL is fine. */
void alog_stop(alog *l);

#endif
