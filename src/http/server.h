/* The HTTP server: libmicrohttpd (epoll, turbo, thread pool), the /v1 route
 * table, auth, limits, CORS, request ids and access log. Renders what api/
 * handlers answer; knows nothing about any resource's JSON. */
#ifndef HEARTH_HTTP_SERVER_H
#define HEARTH_HTTP_SERVER_H

#include <stddef.h>

#include "api/api.h"
#include "http/router.h"

enum http_log { HTTP_LOG_QUIET = 0, HTTP_LOG_ERROR = 1, HTTP_LOG_INFO = 2 };

typedef struct http_config {
  const char *host;     /* "127.0.0.1", "::1", "0.0.0.0", a name */
  int port;             /* 0: any free port (see http_port) */
  int threads;          /* thread pool size, >= 1 */
  long long max_body;   /* bytes of a non-multipart body */
  long long max_upload; /* bytes of a multipart body */
  int timeout;          /* seconds a connection may stay idle */
  int max_connections;  /* simultaneous connections */
  int allow_open;       /* no keys + loopback: any token is accepted */
  enum http_log log;
  const route *table; /* NULL: the route table of http/routes.c */
  size_t table_len;
} http_config;

/* Defaults: 127.0.0.1:8080, 2 threads (or cores), 32 MiB body, 8 GiB
 * upload, 60 s timeout, 1024 connections, info log. */
void http_config_default(http_config *c);

typedef struct http_server http_server;

/* 1 when host names only the loopback interface (127.0.0.0/8, ::1,
 * localhost). */
int http_host_is_loopback(const char *host);

/* Starts listening; NULL with a message in err on failure. ctx must outlive
 * the server. */
http_server *http_start(const http_config *cfg, api_ctx *ctx, char *err,
                        size_t errlen);
/* The bound port (useful with port 0). */
int http_port(const http_server *s);
/* Returns freed heap memory to the kernel when no connection is open and
 * some closed since the last call; call it periodically (serve: every
 * second) from any thread. Cheap when there is nothing to do. */
void http_trim_idle(http_server *s);
/* Stops accepting, waits up to grace_s seconds for in-flight requests,
 * then stops the daemon and frees s. */
void http_stop(http_server *s, int grace_s);

#endif
