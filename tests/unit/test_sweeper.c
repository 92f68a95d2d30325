/* Unit tests for jobs/sweeper.c: expired files lose object and blob,
 * pending uploads past expiry become "expired" and lose their parts,
 * unexpired things stay, and the thread starts and stops cleanly. */
#include <ftw.h>
#include <time.h>
#include <unistd.h>

#include "jobs/sweeper.h"
#include "store/blob.h"
#include "t.h"

static int rm_cb(const char *p, const struct stat *sb, int f, struct FTW *w) {
  (void)sb, (void)f, (void)w;
  return remove(p);
}

static store *open_tmp(char *dir) {
  store *s = NULL;
  char err[256];
  strcpy(dir, "/tmp/hearth-test-sweep-XXXXXX");
  if (!mkdtemp(dir) || store_open(dir, &s, err, sizeof err) != STORE_OK)
    return NULL;
  return s;
}

/* Stores an object whose internal.blob holds fresh bytes; returns blob id
 * in blob_out. */
static void put_with_blob(store *s, const char *kind, const char *id,
                          const char *filter, long long expires,
                          const char *status, char *blob_out) {
  blob_writer *w;
  blob_info bi;
  char err[128];
  blob_begin(store_data_dir(s), &w, err, sizeof err);
  blob_write(w, id, strlen(id));
  blob_commit(w, &bi);
  store_obj o = {0};
  snprintf(o.id, sizeof o.id, "%s", id);
  o.created_at = 1;
  o.expires_at = expires;
  snprintf(o.filter, sizeof o.filter, "%s", filter ? filter : "");
  o.data = json_pack("{s:s}", "id", id);
  if (status)
    json_object_set_new(o.data, "status", json_string(status));
  o.internal = json_pack("{s:s}", "blob", bi.id);
  store_put(s, store_default_project(s), kind, &o);
  store_obj_clear(&o);
  if (blob_out)
    strcpy(blob_out, bi.id);
}

static int blob_exists(store *s, const char *id) {
  int fd;
  long long n;
  if (blob_open(store_data_dir(s), id, &fd, &n) != 0)
    return 0;
  close(fd);
  return 1;
}

static int exists(store *s, const char *kind, const char *id) {
  store_obj o;
  int rc = store_get(s, store_default_project(s), kind, id, &o);
  store_obj_clear(&o);
  return rc == STORE_OK;
}

static const char *status_of(store *s, const char *id, char *buf) {
  store_obj o;
  buf[0] = 0;
  if (store_get(s, store_default_project(s), "upload", id, &o) == STORE_OK)
    snprintf(buf, 32, "%s",
             json_string_value(json_object_get(o.data, "status")));
  store_obj_clear(&o);
  return buf;
}

static void test_run_once(void) {
  char dir[64], b_old[64], b_new[64], b_never[64], b_p1[64], b_p2[64], b_p3[64],
      st[32];
  store *s = open_tmp(dir);
  if (!s) {
    CHECK(0);
    return;
  }
  put_with_blob(s, "file", "file-old", "batch", 100, NULL, b_old);
  put_with_blob(s, "file", "file-new", "batch", 10000, NULL, b_new);
  put_with_blob(s, "file", "file-never", "batch", 0, NULL, b_never);
  put_with_blob(s, "upload", "upload_stale", NULL, 200, "pending", NULL);
  put_with_blob(s, "upload_part", "part_1", "upload_stale", 0, NULL, b_p1);
  put_with_blob(s, "upload_part", "part_2", "upload_stale", 0, NULL, b_p2);
  put_with_blob(s, "upload", "upload_done", NULL, 200, "completed", NULL);
  put_with_blob(s, "upload", "upload_live", NULL, 9000, "pending", NULL);
  put_with_blob(s, "upload_part", "part_3", "upload_live", 0, NULL, b_p3);

  CHECK_INT(sweeper_run_once(s, 1000), 3);
  CHECK(!exists(s, "file", "file-old"));
  CHECK(!blob_exists(s, b_old));
  CHECK(exists(s, "file", "file-new") && blob_exists(s, b_new));
  CHECK(exists(s, "file", "file-never") && blob_exists(s, b_never));
  CHECK_STR(status_of(s, "upload_stale", st), "expired");
  CHECK(!exists(s, "upload_part", "part_1") && !blob_exists(s, b_p1));
  CHECK(!exists(s, "upload_part", "part_2") && !blob_exists(s, b_p2));
  CHECK_STR(status_of(s, "upload_done", st), "completed");
  CHECK_STR(status_of(s, "upload_live", st), "pending");
  CHECK(exists(s, "upload_part", "part_3") && blob_exists(s, b_p3));
  /* a second pass finds nothing new */
  CHECK_INT(sweeper_run_once(s, 1000), 0);
  store_close(s);
  nftw(dir, rm_cb, 8, FTW_DEPTH | FTW_PHYS);
}

static void test_thread_start_stop(void) {
  char dir[64], b[64];
  store *s = open_tmp(dir);
  if (!s) {
    CHECK(0);
    return;
  }
  put_with_blob(s, "file", "file-x", "batch", 5, NULL, b);
  sweeper *sw = sweeper_start(s, 3600);
  CHECK(sw != NULL);
  sweeper_stop(sw); /* returns promptly despite the hour-long interval */
  sweeper_stop(NULL);
  CHECK(!exists(s, "file", "file-x")); /* the first pass always runs */
  CHECK(!blob_exists(s, b));
  store_close(s);
  nftw(dir, rm_cb, 8, FTW_DEPTH | FTW_PHYS);
}

int main(void) {
  RUN(test_run_once);
  RUN(test_thread_start_stop);
  T_MAIN_END();
}
