/* Unit tests for store/blob.c: streaming write + checksums, atomicity
 * (abort and failures leave nothing visible), open/delete, concat, temp
 * sweep, malformed ids. */
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "store/blob.h"
#include "t.h"

static int rm_cb(const char *p, const struct stat *sb, int f, struct FTW *w) {
  (void)sb, (void)f, (void)w;
  return remove(p);
}

/* Regular files directly in dir (not counting subdirectories). */
static int count_files(const char *dir) {
  DIR *d = opendir(dir);
  int n = 0;
  struct dirent *e;
  if (!d)
    return -1;
  while ((e = readdir(d)))
    if (e->d_type == DT_REG)
      n++;
  closedir(d);
  return n;
}

static void test_write_commit_checksums(void) {
  char dir[64], err[256], sub[128];
  strcpy(dir, "/tmp/hearth-test-blob-XXXXXX");
  CHECK(mkdtemp(dir) != NULL);
  blob_writer *w;
  CHECK_INT(blob_begin(dir, &w, err, sizeof err), 0);
  CHECK_INT(blob_write(w, "hello ", 6), 0);
  CHECK_INT(blob_write(w, "world", 5), 0);
  CHECK_INT(blob_written(w), 11);
  snprintf(sub, sizeof sub, "%s/blobs", dir);
  CHECK_INT(count_files(sub), 0); /* nothing visible before commit */
  blob_info bi;
  CHECK_INT(blob_commit(w, &bi), 0);
  CHECK_INT(bi.size, 11);
  CHECK_STR(bi.sha256,
            "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9");
  CHECK_STR(bi.md5, "5eb63bbbe01eeed093cb22bb8f5acdc3");
  CHECK_INT(count_files(sub), 1);
  snprintf(sub, sizeof sub, "%s/blobs/tmp", dir);
  CHECK_INT(count_files(sub), 0);
  int fd;
  long long size;
  CHECK_INT(blob_open(dir, bi.id, &fd, &size), 0);
  CHECK_INT(size, 11);
  char buf[16] = {0};
  CHECK_INT(read(fd, buf, sizeof buf), 11);
  CHECK(strcmp(buf, "hello world") == 0);
  close(fd);
  CHECK_INT(blob_delete(dir, bi.id), 0);
  CHECK_INT(blob_delete(dir, bi.id), 0); /* already absent is fine */
  CHECK_INT(blob_open(dir, bi.id, &fd, &size), -1);
  nftw(dir, rm_cb, 8, FTW_DEPTH | FTW_PHYS);
}

static void test_abort_leaves_nothing(void) {
  char dir[64], err[256], sub[128];
  strcpy(dir, "/tmp/hearth-test-blob-XXXXXX");
  CHECK(mkdtemp(dir) != NULL);
  blob_writer *w;
  CHECK_INT(blob_begin(dir, &w, err, sizeof err), 0);
  CHECK_INT(blob_write(w, "partial", 7), 0);
  blob_abort(w);
  blob_abort(NULL);
  snprintf(sub, sizeof sub, "%s/blobs", dir);
  CHECK_INT(count_files(sub), 0);
  snprintf(sub, sizeof sub, "%s/blobs/tmp", dir);
  CHECK_INT(count_files(sub), 0);
  nftw(dir, rm_cb, 8, FTW_DEPTH | FTW_PHYS);
}

static void test_empty_blob_and_bad_ids(void) {
  char dir[64], err[256];
  strcpy(dir, "/tmp/hearth-test-blob-XXXXXX");
  CHECK(mkdtemp(dir) != NULL);
  blob_writer *w;
  blob_info bi;
  CHECK_INT(blob_begin(dir, &w, err, sizeof err), 0);
  CHECK_INT(blob_commit(w, &bi), 0);
  CHECK_INT(bi.size, 0);
  CHECK_STR(bi.sha256,
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  int fd;
  long long size;
  CHECK_INT(blob_open(dir, "../hearth.db", &fd, &size), -1);
  CHECK_INT(blob_open(dir, "blob_../../etc/passwd", &fd, &size), -1);
  CHECK_INT(blob_delete(dir, "blob_a/b"), -1);
  CHECK_INT(blob_begin("/proc/nope/x", &w, err, sizeof err), -1);
  CHECK(strlen(err) > 0);
  nftw(dir, rm_cb, 8, FTW_DEPTH | FTW_PHYS);
}

static void test_concat_streams_in_order(void) {
  char dir[64], err[256];
  strcpy(dir, "/tmp/hearth-test-blob-XXXXXX");
  CHECK(mkdtemp(dir) != NULL);
  /* three parts, one larger than the 1 MiB copy buffer */
  static char big[3 << 20];
  for (size_t i = 0; i < sizeof big; i++)
    big[i] = (char)('a' + i % 26);
  const char *chunks[3] = {"first-", big, "-last"};
  size_t lens[3] = {6, sizeof big, 5};
  blob_info parts[3], all, whole;
  for (int i = 0; i < 3; i++) {
    blob_writer *w;
    CHECK_INT(blob_begin(dir, &w, err, sizeof err), 0);
    CHECK_INT(blob_write(w, chunks[i], lens[i]), 0);
    CHECK_INT(blob_commit(w, &parts[i]), 0);
  }
  const char *ids[3] = {parts[0].id, parts[1].id, parts[2].id};
  CHECK_INT(blob_concat(dir, ids, 3, &all, err, sizeof err), 0);
  blob_writer *w;
  blob_begin(dir, &w, err, sizeof err);
  for (int i = 0; i < 3; i++)
    blob_write(w, chunks[i], lens[i]);
  blob_commit(w, &whole);
  CHECK_INT(all.size, 11 + (long long)sizeof big);
  CHECK_STR(all.sha256, whole.sha256);
  CHECK_STR(all.md5, whole.md5);
  /* a missing part fails and leaves no new blob */
  char sub[128];
  snprintf(sub, sizeof sub, "%s/blobs", dir);
  int before = count_files(sub);
  const char *bad[2] = {parts[0].id, "blob_missing"};
  CHECK_INT(blob_concat(dir, bad, 2, &all, err, sizeof err), -1);
  CHECK(strstr(err, "blob_missing") != NULL);
  CHECK_INT(count_files(sub), before);
  snprintf(sub, sizeof sub, "%s/blobs/tmp", dir);
  CHECK_INT(count_files(sub), 0);
  nftw(dir, rm_cb, 8, FTW_DEPTH | FTW_PHYS);
}

static void test_sweep_tmp(void) {
  char dir[64], err[256], path[256];
  strcpy(dir, "/tmp/hearth-test-blob-XXXXXX");
  CHECK(mkdtemp(dir) != NULL);
  blob_writer *w;
  blob_begin(dir, &w, err, sizeof err); /* creates blobs/tmp */
  /* an orphan left by a "crash", two days old */
  snprintf(path, sizeof path, "%s/blobs/tmp/blob_orphan.part", dir);
  int fd = open(path, O_CREAT | O_WRONLY, 0600);
  close(fd);
  struct timespec old[2] = {{time(NULL) - 2 * 86400, 0},
                            {time(NULL) - 2 * 86400, 0}};
  utimensat(AT_FDCWD, path, old, 0);
  CHECK_INT(blob_sweep_tmp(dir, 86400), 1);
  CHECK(access(path, F_OK) != 0);
  /* the live writer's temp file is young: kept */
  CHECK_INT(blob_write(w, "x", 1), 0);
  blob_info bi;
  CHECK_INT(blob_commit(w, &bi), 0);
  nftw(dir, rm_cb, 8, FTW_DEPTH | FTW_PHYS);
}

int main(void) {
  RUN(test_write_commit_checksums);
  RUN(test_abort_leaves_nothing);
  RUN(test_empty_blob_and_bad_ids);
  RUN(test_concat_streams_in_order);
  RUN(test_sweep_tmp);
  T_MAIN_END();
}
