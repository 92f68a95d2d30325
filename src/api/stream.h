/* Streamed response bodies (Server-Sent Events and any other body produced
 * while it is being sent). A handler makes one with api_resp_stream(); a
 * producer (the handler itself, or a worker thread it hands the stream to)
 * writes to it and ends it; http/ drains it to the client as bytes arrive,
 * without busy-waiting. When the client goes away the stream is cancelled
 * and writes fail, so the producer stops (e.g. cancels a generation).
 * Thread-safe. Knows nothing about libmicrohttpd: http/ plugs in through
 * the consumer functions at the bottom. */
#ifndef HEARTH_API_STREAM_H
#define HEARTH_API_STREAM_H

#include <jansson.h>
#include <stddef.h>
#include <sys/types.h>

typedef struct api_stream api_stream;

/* ---- producer side */

/* Appends n bytes. Blocks while more than API_STREAM_MAX_BUFFERED bytes
 * wait for a slow client. 0, or -1 once the client is gone (stop). */
#define API_STREAM_MAX_BUFFERED (4 << 20)
int api_stream_write(api_stream *s, const void *data, size_t n);
/* One Server-Sent Event: "event: <event>\n" (when event is non-NULL) then
 * "data: <compact JSON>\n\n". 0 / -1 as api_stream_write. */
int api_stream_sse(api_stream *s, const char *event, const json_t *data);
/* "data: [DONE]\n\n", the end marker of the platform's chat streams. */
int api_stream_sse_done(api_stream *s);
/* 1 once the client disconnected (or the server is shutting down). */
int api_stream_cancelled(api_stream *s);
/* Bytes written and not yet read by the client: a producer that must not
 * block (e.g. a model's decode thread) checks this before writing. */
size_t api_stream_buffered(api_stream *s);
/* Ends the body and drops the producer's reference: call exactly once,
 * also after a failed write. */
void api_stream_end(api_stream *s);

/* ---- consumer side (http/) */

/* A new stream with two references: the producer's (dropped by
 * api_stream_end) and the consumer's (dropped by api_stream_release). */
api_stream *api_stream_new(void);
/* Called (under the stream's lock) when data or the end arrives after a
 * read found nothing: the consumer resumes sending. */
typedef void (*api_stream_fn)(void *cls);
/* Copies up to max buffered bytes into buf. Returns the count (> 0); -1
 * when the producer ended and everything was read; 0 when nothing is
 * buffered yet, after calling suspend(cls) under the lock: wake(cls) will
 * follow exactly once, when there is something to read. */
ssize_t api_stream_read(api_stream *s, char *buf, size_t max,
                        api_stream_fn suspend, api_stream_fn wake, void *cls);
/* The client is gone: cancels the stream (writes fail from now on) and
 * drops the consumer's reference. A pending wake-up is not delivered. */
void api_stream_release(api_stream *s);
/* Server shutdown: cancels the stream; a suspended reader is woken and
 * then reads the end. */
void api_stream_abort(api_stream *s);

#endif
