/* hearth keys: create, list and delete API keys in a data directory.
 * A new key is printed once, alone on a line of stdout; only its hash is
 * stored. Every flag also reads a HEARTH_* variable. Knows nothing about
 * HTTP or SQL (it goes through core/auth.h and store/store.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "cli/flags.h"
#include "core/auth.h"
#include "core/paths.h"
#include "store/store.h"

typedef struct keys_opts {
  const char *action; /* create | list | delete */
  const char *project;
  const char *data;
  const char *key_id; /* delete */
  int admin;
} keys_opts;

static void keys_usage(FILE *f) {
  fprintf(f,
          "usage: hearth keys create [--project NAME] [--admin] [--data DIR]\n"
          "       hearth keys list [--data DIR]\n"
          "       hearth keys delete KEY_ID [--data DIR]\n\n"
          "  create     make a new API key and print it once (stdout)\n"
          "  list       show keys: id, project, admin, created, redacted key\n"
          "  delete     revoke a key by its id (key_...)\n\n"
          "  --project NAME  project of the new key, created if missing\n"
          "                  (default \"default\")           [HEARTH_PROJECT]\n"
          "  --admin         the key may use /v1/organization endpoints\n"
          "                                                  [HEARTH_ADMIN=1]\n"
          "  --data DIR      data directory (default $HOME/.hearth)\n"
          "                                                  [HEARTH_DATA]\n");
}

/* 0 ok, 1 help printed, 2 usage error. */
static int keys_parse(int argc, char **argv, keys_opts *o) {
  memset(o, 0, sizeof *o);
  o->project = getenv("HEARTH_PROJECT");
  o->admin = cli_env_flag("HEARTH_ADMIN");
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      keys_usage(stdout);
      return 1;
    } else if (!strcmp(a, "--admin")) {
      o->admin = 1;
    } else if ((!strcmp(a, "--project") || !strcmp(a, "--data")) &&
               i + 1 < argc) {
      *(a[2] == 'p' ? &o->project : &o->data) = argv[++i];
    } else if (!strncmp(a, "--project=", 10)) {
      o->project = a + 10;
    } else if (!strncmp(a, "--data=", 7)) {
      o->data = a + 7;
    } else if (a[0] != '-' && !o->action) {
      o->action = a;
    } else if (a[0] != '-' && !o->key_id) {
      o->key_id = a;
    } else {
      fprintf(stderr, "hearth keys: unexpected argument '%s'\n\n", a);
      keys_usage(stderr);
      return 2;
    }
  }
  if (!o->action) {
    keys_usage(stderr);
    return 2;
  }
  return 0;
}

static int keys_create(store *s, const keys_opts *o) {
  char secret[AUTH_KEY_MAX];
  store_key k;
  api_error e;
  if (auth_key_create(s, o->project, o->admin, secret, &k, &e) != 0) {
    fprintf(stderr, "hearth keys: %s\n", e.message);
    return 1;
  }
  store_project p;
  store_project_by_id(s, k.project_id, &p);
  fprintf(stderr, "created %s%s in project %s (%s); the key is shown once:\n",
          k.id, k.admin ? " (admin)" : "", p.name, k.project_id);
  printf("%s\n", secret);
  return 0;
}

static int print_key(const store_key *k, void *arg) {
  store *s = arg;
  store_project p;
  if (store_project_by_id(s, k->project_id, &p) != STORE_OK)
    snprintf(p.name, sizeof p.name, "?");
  char when[32];
  time_t t = (time_t)k->created_at;
  struct tm tm;
  strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&t, &tm));
  printf("%-28s %-20s %-28s %-5s %-20s %s\n", k->id, p.name, k->project_id,
         k->admin ? "admin" : "-", when, k->redacted);
  return 0;
}

static int keys_list(store *s) {
  printf("%-28s %-20s %-28s %-5s %-20s %s\n", "ID", "PROJECT", "PROJECT_ID",
         "ADMIN", "CREATED", "KEY");
  return store_key_each(s, print_key, s) == STORE_OK ? 0 : 1;
}

static int keys_delete(store *s, const keys_opts *o) {
  if (!o->key_id) {
    fprintf(stderr, "hearth keys delete: which key? (key_... from 'hearth "
                    "keys list')\n");
    return 2;
  }
  int rc = store_key_delete(s, o->key_id);
  if (rc == STORE_NOT_FOUND) {
    fprintf(stderr, "hearth keys: no key %s\n", o->key_id);
    return 1;
  }
  if (rc != STORE_OK)
    return 1;
  fprintf(stderr, "deleted %s\n", o->key_id);
  return 0;
}

int cli_keys(int argc, char **argv) {
  keys_opts o;
  int rc = keys_parse(argc, argv, &o);
  if (rc)
    return rc == 1 ? 0 : rc;
  int known = !strcmp(o.action, "create") || !strcmp(o.action, "list") ||
              !strcmp(o.action, "delete");
  if (!known) {
    fprintf(stderr, "hearth keys: unknown action '%s'\n\n", o.action);
    keys_usage(stderr);
    return 2;
  }
  char dir[4096], err[512];
  if (paths_data_dir(o.data, dir, sizeof dir) != 0) {
    fprintf(stderr, "hearth keys: no data directory (set --data or "
                    "HEARTH_DATA)\n");
    return 1;
  }
  store *s;
  if (store_open(dir, &s, err, sizeof err) != STORE_OK) {
    fprintf(stderr, "hearth keys: %s\n", err);
    return 1;
  }
  if (!strcmp(o.action, "create"))
    rc = keys_create(s, &o);
  else if (!strcmp(o.action, "list"))
    rc = keys_list(s);
  else
    rc = keys_delete(s, &o);
  store_close(s);
  return rc;
}
