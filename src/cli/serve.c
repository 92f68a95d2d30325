/* hearth serve: reads flags (each also a HEARTH_* variable), opens the
 * store, creates the model pool (engine/sched.h: models loaded on first
 * use, one continuous-batching scheduler each), starts the expiry sweeper
 * and the HTTP server, and shuts all of it down cleanly on SIGINT/SIGTERM
 * (stop accepting, let in-flight requests finish, unload the models, stop
 * the sweeper, close the store). Knows nothing about routes or resources. */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "api/api.h"
#include "api/gen.h"
#include "cli/cli.h"
#include "core/auth.h"
#include "core/paths.h"
#include "engine/sched.h"
#include "http/server.h"
#include "jobs/sweeper.h"
#include "store/store.h"

typedef struct serve_opts {
  http_config http;
  const char *data;
  int sweep_interval;
  int grace;
  const char *aliases[64];
  int naliases;
  sched_pool_params pool;
  const char *default_model;
} serve_opts;

static const struct flag {
  const char *name, *env, *arg, *help;
} flags[] = {
    {"--host", "HEARTH_HOST", "H", "address to listen on (default 127.0.0.1)"},
    {"--port", "HEARTH_PORT", "P", "port (default 8080; 0 = any free port)"},
    {"--data", "HEARTH_DATA", "DIR",
     "data directory: hearth.db, blobs/, models/ (default ~/.hearth)"},
    {"--threads", "HEARTH_THREADS", "N",
     "HTTP worker threads (default: number of cores)"},
    {"--max-body", "HEARTH_MAX_BODY", "BYTES",
     "largest JSON request body (default 33554432 = 32 MiB)"},
    {"--max-upload", "HEARTH_MAX_UPLOAD", "BYTES",
     "largest multipart body (default 8589934592 = 8 GiB)"},
    {"--timeout", "HEARTH_TIMEOUT", "S",
     "seconds an idle or stalled connection is kept (default 60)"},
    {"--max-connections", "HEARTH_MAX_CONNECTIONS", "N",
     "simultaneous connections (default 1024)"},
    {"--alias", "HEARTH_ALIASES", "NAME=MODEL",
     "serve models/MODEL.gguf also as NAME (repeatable; the variable takes "
     "a comma-separated list); <data>/aliases.json adds more"},
    {"--log-level", "HEARTH_LOG_LEVEL", "L",
     "quiet | error | info (default info: one access-log line per request "
     "on stderr, and per generation request a line with its token counts, "
     "queue, prefill, first-token and total times and decode tok/s)"},
    {"--quiet", "HEARTH_QUIET", NULL, "same as --log-level quiet"},
    {"--sweep-interval", "HEARTH_SWEEP_INTERVAL", "S",
     "seconds between expiry sweeps of files and uploads (default 60)"},
    {"--grace", "HEARTH_GRACE", "S",
     "seconds in-flight requests get to finish at shutdown (default 10)"},
    {"--parallel", "HEARTH_PARALLEL", "N",
     "sequences one model decodes together (1..64, default 16)"},
    {"--ctx", "HEARTH_CTX", "N",
     "most tokens (prompt + output) of one sequence (default: the model's "
     "training context, at most 4096)"},
    {"--kv", "HEARTH_KV", "N",
     "KV-cache cells per model, shared by its sequences (default 4 x --ctx)"},
    {"--batch", "HEARTH_BATCH", "N",
     "most tokens per forward pass (default 512)"},
    {"--queue", "HEARTH_QUEUE", "N",
     "requests waiting for a free sequence before 429 (default 64)"},
    {"--keep-alive", "HEARTH_KEEP_ALIVE", "S",
     "unload a model idle this many seconds (default 300; -1 = never)"},
    {"--max-models", "HEARTH_MAX_MODELS", "N",
     "models loaded at once (default 2)"},
    {"--engine-threads", "HEARTH_ENGINE_THREADS", "N",
     "threads of each model's forward pass (default 0 = all cores)"},
    {"--default-model", "HEARTH_DEFAULT_MODEL", "NAME",
     "serve unknown chat model names with this model (default: unknown "
     "names answer 404)"},
};

static void usage(FILE *f) {
  fprintf(f, "usage: hearth serve [options]\n\nRuns the OpenAI-compatible API "
             "server (point an SDK at http://HOST:PORT/v1).\n\noptions (each "
             "also read from its environment variable):\n");
  for (size_t i = 0; i < sizeof flags / sizeof *flags; i++) {
    char left[64];
    snprintf(left, sizeof left, "%s%s%s", flags[i].name,
             flags[i].arg ? " " : "", flags[i].arg ? flags[i].arg : "");
    fprintf(f, "  %-28s %s [%s]\n", left, flags[i].help, flags[i].env);
  }
  fprintf(f, "  %-28s this help\n", "-h, --help");
}

static int parse_ll(const char *flag, const char *v, long long min,
                    long long *out) {
  char *end;
  errno = 0;
  long long x = strtoll(v, &end, 10);
  if (errno || end == v || *end || x < min) {
    fprintf(stderr, "hearth serve: %s needs an integer >= %lld, got '%s'\n",
            flag, min, v);
    return -1;
  }
  *out = x;
  return 0;
}

static int set_log(serve_opts *o, const char *v) {
  if (!strcmp(v, "quiet"))
    o->http.log = HTTP_LOG_QUIET;
  else if (!strcmp(v, "error"))
    o->http.log = HTTP_LOG_ERROR;
  else if (!strcmp(v, "info"))
    o->http.log = HTTP_LOG_INFO;
  else {
    fprintf(stderr, "hearth serve: --log-level is quiet, error or info\n");
    return -1;
  }
  return 0;
}

/* The model pool's flags: 1 when name is one (applied or -1 on a bad
 * value), 0 when it is not. */
static int apply_engine(serve_opts *o, const char *name, const char *v) {
  static const struct {
    const char *name;
    long long min, max;
  } lim[] = {{"--parallel", 1, 64},   {"--ctx", 0, 1 << 20},
             {"--kv", 0, 1 << 24},    {"--batch", 1, 1 << 16},
             {"--queue", 0, 1 << 20}, {"--keep-alive", -1, INT_MAX},
             {"--max-models", 1, 64}, {"--engine-threads", 0, 1024}};
  long long x;
  sched_params *sp = &o->pool.sched;
  if (!strcmp(name, "--default-model")) {
    o->default_model = *v ? v : NULL;
    return 1;
  }
  for (size_t i = 0; i < sizeof lim / sizeof *lim; i++) {
    if (strcmp(name, lim[i].name))
      continue;
    if (parse_ll(name, v, lim[i].min, &x) < 0)
      return -1;
    if (!strcmp(name, "--ctx") && x == 1)
      return fprintf(stderr, "hearth serve: --ctx is 0 (default) or >= 2\n"),
             -1;
    if (x > lim[i].max)
      return fprintf(stderr, "hearth serve: %s is at most %lld\n", name,
                     lim[i].max),
             -1;
    int *dst[] = {&sp->n_slots,        &sp->n_ctx_seq, &sp->n_kv,
                  &sp->n_batch,        &sp->max_queue, &o->pool.keep_alive_s,
                  &o->pool.max_models, &sp->n_threads};
    *dst[i] = (int)x;
    return 1;
  }
  return 0;
}

/* Applies one option value; name is a flag of the table. */
static int apply(serve_opts *o, const char *name, const char *v) {
  long long x;
  int r = apply_engine(o, name, v);
  if (r)
    return r < 0 ? -1 : 0;
  if (!strcmp(name, "--host"))
    o->http.host = v;
  else if (!strcmp(name, "--data"))
    o->data = v;
  else if (!strcmp(name, "--alias")) {
    if (o->naliases == 64)
      return fprintf(stderr, "hearth serve: too many --alias\n"), -1;
    o->aliases[o->naliases++] = v;
  } else if (!strcmp(name, "--log-level"))
    return set_log(o, v);
  else if (!strcmp(name, "--quiet")) {
    if (strcmp(v, "0") && strcmp(v, ""))
      o->http.log = HTTP_LOG_QUIET;
  } else {
    int port = !strcmp(name, "--port"), timeout = !strcmp(name, "--timeout");
    int sweep = !strcmp(name, "--sweep-interval");
    int grace = !strcmp(name, "--grace");
    if (parse_ll(name, v, port || grace ? 0 : 1, &x) < 0)
      return -1;
    if (port && x > 65535)
      return fprintf(stderr, "hearth serve: --port is 0..65535\n"), -1;
    if ((port || timeout || sweep || grace || !strcmp(name, "--threads") ||
         !strcmp(name, "--max-connections")) &&
        x > INT_MAX)
      return fprintf(stderr, "hearth serve: %s is too large\n", name), -1;
    if (port)
      o->http.port = (int)x;
    else if (timeout)
      o->http.timeout = (int)x;
    else if (sweep)
      o->sweep_interval = (int)x;
    else if (grace)
      o->grace = (int)x;
    else if (!strcmp(name, "--threads"))
      o->http.threads = (int)x;
    else if (!strcmp(name, "--max-connections"))
      o->http.max_connections = (int)x;
    else if (!strcmp(name, "--max-body"))
      o->http.max_body = x;
    else if (!strcmp(name, "--max-upload"))
      o->http.max_upload = x;
  }
  return 0;
}

/* Environment first, flags override. HEARTH_ALIASES is comma-separated:
 * its copy (aliases_env) is split in place and must outlive the options. */
static int parse(serve_opts *o, int argc, char **argv, char *aliases_env) {
  for (size_t i = 0; i < sizeof flags / sizeof *flags; i++) {
    const char *v = getenv(flags[i].env);
    if (!v || !*v)
      continue;
    if (!strcmp(flags[i].name, "--alias")) {
      snprintf(aliases_env, 4096, "%s", v);
      for (char *save, *t = strtok_r(aliases_env, ",", &save); t;
           t = strtok_r(NULL, ",", &save))
        if (apply(o, "--alias", t) < 0)
          return -1;
    } else if (apply(o, flags[i].name, v) < 0)
      return -1;
  }
  for (int a = 1; a < argc; a++) {
    const char *arg = argv[a];
    if (!strcmp(arg, "-h") || !strcmp(arg, "--help")) {
      usage(stdout);
      return 1;
    }
    const struct flag *f = NULL;
    const char *eq = strchr(arg, '=');
    size_t n = eq ? (size_t)(eq - arg) : strlen(arg);
    for (size_t i = 0; i < sizeof flags / sizeof *flags; i++)
      if (strlen(flags[i].name) == n && !strncmp(flags[i].name, arg, n))
        f = &flags[i];
    if (!f) {
      fprintf(stderr, "hearth serve: unknown option '%s'\n\n", arg);
      usage(stderr);
      return -1;
    }
    const char *v = eq ? eq + 1 : "1";
    if (f->arg && !eq) {
      if (a + 1 >= argc) {
        fprintf(stderr, "hearth serve: %s needs a value\n", f->name);
        return -1;
      }
      v = argv[++a];
    }
    if (apply(o, f->name, v) < 0)
      return -1;
  }
  return 0;
}

/* Fills ctx's paths, aliases and models cache. */
static int ctx_init(api_ctx *ctx, const serve_opts *o, const char *data) {
  char err[512], path[1024];
  snprintf(ctx->data_dir, sizeof ctx->data_dir, "%s", data);
  snprintf(ctx->models_dir, sizeof ctx->models_dir, "%s/models", data);
  ctx->max_upload = o->http.max_upload;
  if (paths_mkdir_p(ctx->models_dir) < 0) {
    fprintf(stderr, "hearth serve: cannot create %s: %s\n", ctx->models_dir,
            strerror(errno));
    return -1;
  }
  snprintf(path, sizeof path, "%s/aliases.json", data);
  if (api_aliases_load(ctx, path, err, sizeof err) < 0) {
    fprintf(stderr, "hearth serve: %s\n", err);
    return -1;
  }
  for (int i = 0; i < o->naliases; i++) {
    char name[256];
    const char *eq = strchr(o->aliases[i], '=');
    if (!eq || eq == o->aliases[i] ||
        (size_t)(eq - o->aliases[i]) >= sizeof name) {
      fprintf(stderr, "hearth serve: --alias wants NAME=MODEL, got '%s'\n",
              o->aliases[i]);
      return -1;
    }
    snprintf(name, sizeof name, "%.*s", (int)(eq - o->aliases[i]),
             o->aliases[i]);
    if (api_alias_add(ctx, name, eq + 1) < 0) {
      fprintf(stderr, "hearth serve: invalid alias '%s'\n", o->aliases[i]);
      return -1;
    }
  }
  ctx->models_cache = api_models_cache_new();
  ctx->default_model = o->default_model;
  if (o->default_model &&
      !api_model_resolve(ctx, o->default_model, path, sizeof path))
    fprintf(stderr,
            "hearth serve: warning: --default-model %s is not in %s (yet)\n",
            o->default_model, ctx->models_dir);
  ctx->pool = sched_pool_new(&o->pool);
  ctx->gen = gen_shared_new();
  return ctx->models_cache && ctx->pool && ctx->gen ? 0 : -1;
}

/* Open mode (any bearer token) only on loopback without keys; refuses a
 * non-loopback address when no key exists. 0 / -1. */
static int decide_auth(serve_opts *o, store *st) {
  int keys = auth_keys_configured(st);
  int loop = http_host_is_loopback(o->http.host);
  if (keys < 0) {
    fprintf(stderr, "hearth serve: cannot read the API keys\n");
    return -1;
  }
  if (!keys && !loop) {
    fprintf(stderr,
            "hearth serve: refusing to listen on %s without any API key: "
            "anyone on the network could use this server.\n"
            "Create one first with `hearth keys create` (same --data), or "
            "listen on 127.0.0.1.\n",
            o->http.host);
    return -1;
  }
  o->http.allow_open = !keys && loop;
  return 0;
}

/* Each connection is a descriptor, and blobs being written or sent are
 * more: lift the soft limit to the hard one (1024 by default on Linux). */
static void raise_fd_limit(void) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

static int run(serve_opts *o, const char *data) {
  char err[512];
  store *st = NULL;
  api_ctx ctx;
  sweeper *sw = NULL;
  http_server *srv = NULL;
  sigset_t sigs;
  int rc = 1, sig = 0;
  memset(&ctx, 0, sizeof ctx);
  raise_fd_limit();
  if (store_open(data, &st, err, sizeof err) != STORE_OK) {
    fprintf(stderr, "hearth serve: cannot open the store in %s: %s\n", data,
            err);
    return 1;
  }
  ctx.store = st;
  if (decide_auth(o, st) < 0 || ctx_init(&ctx, o, data) < 0)
    goto out;
  /* Every thread started from here on inherits the blocked signals; this
   * thread alone waits for them. */
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &sigs, NULL);
  signal(SIGPIPE, SIG_IGN);
  sw = sweeper_start(st, o->sweep_interval);
  if (!sw) {
    fprintf(stderr, "hearth serve: cannot start the expiry sweeper\n");
    goto out;
  }
  srv = http_start(&o->http, &ctx, err, sizeof err);
  if (!srv) {
    fprintf(stderr, "hearth serve: %s\n", err);
    goto out;
  }
  if (o->http.allow_open)
    fprintf(stderr, "hearth: no API keys configured: any bearer token is "
                    "accepted on this loopback address (hearth keys create "
                    "makes one)\n");
  printf("hearth listening on http://%s:%d (data %s)\n", o->http.host,
         http_port(srv), data);
  fflush(stdout);
  /* Waits for SIGINT/SIGTERM; once a second trims idle memory and unloads
   * models idle past --keep-alive. */
  const struct timespec tick = {1, 0};
  while ((sig = sigtimedwait(&sigs, NULL, &tick)) < 0) {
    http_trim_idle(srv);
    sched_pool_tick(ctx.pool);
  }
  if (o->http.log >= HTTP_LOG_INFO)
    fprintf(stderr, "hearth: %s received, shutting down\n",
            sig == SIGINT ? "SIGINT" : "SIGTERM");
  rc = 0;
out:
  http_stop(srv, o->grace);
  /* Order: no new request (HTTP stopped); finish deferred work (stored
   * completions) while models and store are there; unload the models
   * (cancelling what still runs); free the template cache; the store. */
  gen_shared_stop(ctx.gen);
  if (ctx.pool)
    sched_pool_free(ctx.pool);
  gen_shared_free(ctx.gen);
  sweeper_stop(sw);
  store_close(st);
  api_models_cache_free(ctx.models_cache);
  api_aliases_free(&ctx);
  return rc;
}

int cli_serve(int argc, char **argv) {
  serve_opts o;
  char data[768];
  char aliases_env[4096];
  memset(&o, 0, sizeof o);
  http_config_default(&o.http);
  o.sweep_interval = 60;
  o.grace = 10;
  o.pool = sched_pool_default_params();
  int r = parse(&o, argc, argv, aliases_env);
  if (r != 0)
    return r > 0 ? 0 : 2;
  if (paths_data_dir(o.data, data, sizeof data) < 0) {
    fprintf(stderr, "hearth serve: no data directory (set --data or "
                    "HEARTH_DATA)\n");
    return 2;
  }
  return run(&o, data);
}
