/* hearth pull: downloads a GGUF model, by catalog name or URL, into
 * <data>/models/<name>.gguf (jobs/pull.h does the work). Draws a progress
 * bar on stderr when it is a terminal (a plain line per 10% otherwise),
 * prints the saved path on stdout.
 * Every flag also reads a HEARTH_* variable. Knows nothing about HTTP
 * serving, the store or the engine. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/flags.h"
#include "core/paths.h"
#include "jobs/pull.h"

typedef struct pull_cli {
  const char *what; /* NAME or URL */
  const char *data;
  const char *name;
  const char *sha256;
  int quiet;
  int list;
} pull_cli;

static void pull_usage(FILE *f) {
  fprintf(f, "usage: hearth pull NAME|URL [--data DIR] [--name LOCALNAME]\n"
             "                   [--sha256 HEX] [--quiet]\n"
             "       hearth pull --list\n\n"
             "Downloads a GGUF model into DIR/models/LOCALNAME.gguf. An\n"
             "interrupted download resumes where it stopped; the file appears\n"
             "under its final name only once complete and checked.\n\n"
             "  NAME             a catalog name (see --list), e.g.\n"
             "                   qwen2.5-0.5b-instruct:q4_k_m\n"
             "  URL              http(s):// address of a .gguf file\n"
             "  --data DIR       data directory (default $HOME/.hearth)\n"
             "                                                  [HEARTH_DATA]\n"
             "  --name LOCAL     local model name (default: from NAME or URL)\n"
             "                                             [HEARTH_PULL_NAME]\n"
             "  --sha256 HEX     expected SHA-256 of the file\n"
             "                                           [HEARTH_PULL_SHA256]\n"
             "  --quiet          no progress, no summary\n"
             "                                          [HEARTH_PULL_QUIET=1]\n"
             "  --list           print the catalog of known models\n\n"
             "HF_TOKEN (or HEARTH_HF_TOKEN), when set, is sent to "
             "huggingface.co only\n(gated repositories).\n");
}

/* "--flag VALUE" or "--flag=VALUE": the value, advancing *i; NULL if a is
 * not that flag. */
static const char *flag_value(const char *flag, int argc, char **argv, int *i) {
  size_t n = strlen(flag);
  if (strncmp(argv[*i], flag, n))
    return NULL;
  if (argv[*i][n] == '=')
    return argv[*i] + n + 1;
  if (argv[*i][n] == 0 && *i + 1 < argc)
    return argv[++*i];
  return NULL;
}

/* 0 ok, 1 help printed, 2 usage error. */
static int pull_parse(int argc, char **argv, pull_cli *o) {
  memset(o, 0, sizeof *o);
  o->name = getenv("HEARTH_PULL_NAME");
  o->sha256 = getenv("HEARTH_PULL_SHA256");
  o->quiet = cli_env_flag("HEARTH_PULL_QUIET");
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v;
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      pull_usage(stdout);
      return 1;
    } else if (!strcmp(a, "--quiet") || !strcmp(a, "-q")) {
      o->quiet = 1;
    } else if (!strcmp(a, "--list")) {
      o->list = 1;
    } else if ((v = flag_value("--data", argc, argv, &i))) {
      o->data = v;
    } else if ((v = flag_value("--name", argc, argv, &i))) {
      o->name = v;
    } else if ((v = flag_value("--sha256", argc, argv, &i))) {
      o->sha256 = v;
    } else if (a[0] != '-' && !o->what) {
      o->what = a;
    } else {
      fprintf(stderr, "hearth pull: unexpected argument '%s'\n\n", a);
      pull_usage(stderr);
      return 2;
    }
  }
  if (!o->what && !o->list) {
    pull_usage(stderr);
    return 2;
  }
  return 0;
}

/* The catalog: name, what it is, where it comes from and its SHA-256 when
 * built in (otherwise the server's X-Linked-Etag, if any, is checked). */
static void print_catalog(void) {
  size_t n;
  const pull_catalog_entry *c = pull_catalog(&n);
  for (size_t i = 0; i < n; i++) {
    printf("%-30s %s\n%-30s https://huggingface.co/%s/resolve/main/%s\n",
           c[i].name, c[i].about, "", c[i].repo, c[i].file);
    if (c[i].sha256)
      printf("%-30s sha256 %s (checked)\n", "", c[i].sha256);
    else
      printf("%-30s sha256 not built in: checked against the one the server "
             "publishes (X-Linked-Etag) when it does\n",
             "");
  }
}

/* ---- progress bar ------------------------------------------------------- */

typedef struct bar {
  double last; /* elapsed seconds at the last redraw / line */
  int drawn;
  int lines;        /* not a terminal: a plain line now and then */
  int last_tenth;   /* lines mode: last 10% step printed */
  uint64_t resumed; /* resume point last reported */
} bar;

static void fmt_eta(double s, char *out, size_t n) {
  if (s < 0 || s > 99 * 3600) {
    snprintf(out, n, "--:--");
    return;
  }
  long t = (long)(s + 0.5);
  if (t >= 3600)
    snprintf(out, n, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
  else
    snprintf(out, n, "%ld:%02ld", t / 60, t % 60);
}

/* Not a terminal: one line per 10% step (every 10 s when the size is
 * unknown), so that logs show progress without carriage returns. */
static void print_line(const pull_progress *p, bar *b) {
  if (p->total) {
    int tenth = (int)(p->done * 10 / p->total);
    if (tenth <= b->last_tenth)
      return;
    b->last_tenth = tenth;
    fprintf(stderr, "%3d%%  %.1f/%.1f MB\n", tenth * 10, p->done / 1e6,
            p->total / 1e6);
  } else {
    if (p->elapsed - b->last < 10)
      return;
    b->last = p->elapsed;
    fprintf(stderr, "%.1f MB\n", p->done / 1e6);
  }
  fflush(stderr);
}

/* Redraws at most 10 times a second: percent, MB, MB/s, ETA. */
static int draw_bar(const pull_progress *p, void *ud) {
  bar *b = ud;
  if (p->done == 0 && p->total == 0)
    return 0; /* nothing known yet (connecting, redirects) */
  if (p->resumed_from && p->resumed_from != b->resumed) {
    b->resumed = p->resumed_from;
    fprintf(stderr, "%sresuming at %.1f MB\n",
            b->drawn && !b->lines ? "\n" : "", p->resumed_from / 1e6);
  }
  if (b->lines) {
    print_line(p, b);
    return 0;
  }
  if (b->drawn && p->elapsed - b->last < 0.1 &&
      !(p->total && p->done == p->total))
    return 0;
  b->last = p->elapsed;
  b->drawn = 1;
  double mb = p->done / 1e6, got = (double)(p->done - p->resumed_from);
  double rate = p->elapsed > 0 ? got / p->elapsed : 0;
  char eta[32];
  if (p->total) {
    fmt_eta(rate > 0 ? (p->total - p->done) / rate : -1, eta, sizeof eta);
    double f = (double)p->done / p->total;
    int w = 30, k = (int)(f * w);
    char bar[31];
    for (int i = 0; i < w; i++)
      bar[i] = i < k ? '#' : '.';
    bar[w] = 0;
    fprintf(stderr, "\r[%s] %5.1f%%  %.1f/%.1f MB  %.1f MB/s  ETA %s  ", bar,
            100 * f, mb, p->total / 1e6, rate / 1e6, eta);
  } else {
    fprintf(stderr, "\r%.1f MB  %.1f MB/s  ", mb, rate / 1e6);
  }
  fflush(stderr);
  return 0;
}

/* ---- command ------------------------------------------------------------ */

/* $HF_TOKEN (Hugging Face's own variable), only for huggingface.co URLs:
 * gated repositories need it; other hosts must never see it. */
static const char *hf_token(const char *url) {
  const char *tok = getenv("HEARTH_HF_TOKEN");
  if (!tok || !*tok)
    tok = getenv("HF_TOKEN");
  return strncmp(url, "https://huggingface.co/", 23) ? NULL : tok;
}

int cli_pull(int argc, char **argv) {
  pull_cli o;
  int rc = pull_parse(argc, argv, &o);
  if (rc)
    return rc == 1 ? 0 : 2;
  if (o.list) {
    print_catalog();
    return 0;
  }
  char err[1024], data[4096], models[4200];
  pull_target t;
  if (pull_resolve(o.what, &t, err, sizeof err)) {
    fprintf(stderr, "hearth pull: %s\n", err);
    return 2;
  }
  if (paths_data_dir(o.data, data, sizeof data)) {
    fprintf(stderr, "hearth pull: no data directory (set --data or "
                    "HEARTH_DATA)\n");
    return 2;
  }
  snprintf(models, sizeof models, "%s/models", data);
  bar b = {0, 0, !isatty(STDERR_FILENO), -1, 0};
  int show = !o.quiet;
  pull_opts po = {.url = t.url,
                  .models_dir = models,
                  .name = o.name && *o.name ? o.name : t.name,
                  .sha256 = o.sha256 && *o.sha256 ? o.sha256 : t.sha256,
                  .retries = 5,
                  .bearer = hf_token(t.url),
                  .progress = show ? draw_bar : NULL,
                  .progress_ud = &b};
  if (show)
    fprintf(stderr, "pulling %s\n", t.url);
  pull_result r;
  pull_status st = pull_download(&po, &r, err, sizeof err);
  if (b.drawn && !b.lines)
    fputc('\n', stderr);
  if (st != PULL_OK) {
    fprintf(stderr, "hearth pull: %s\n", err);
    return st == PULL_EINVAL ? 2 : 1;
  }
  if (!o.quiet)
    printf("%s %s (%.1f MB, sha256 %s, %s)\n",
           r.already ? "already present:" : "saved", r.path, r.bytes / 1e6,
           r.sha256,
           r.sha256_checked ? "verified" : "not verified: no published digest");
  return 0;
}
