/* Where hearth keeps its data when no --data / HEARTH_DATA is given:
 * $HOME/.hearth (home from $HOME, else the passwd entry). The directory
 * holds hearth.db (SQLite, WAL), blobs/ (file bytes) and models/ (GGUF).
 * Knows nothing about what is stored there. */
#ifndef HEARTH_CORE_PATHS_H
#define HEARTH_CORE_PATHS_H

#include <stddef.h>

/* Writes the default data directory into out. 0 ok, -1 if no home directory
 * can be found or out is too small. */
int paths_default_data_dir(char *out, size_t outlen);

/* Resolves the data directory as every CLI command does: flag value if
 * non-NULL and non-empty, else $HEARTH_DATA, else the default. 0 / -1. */
int paths_data_dir(const char *flag, char *out, size_t outlen);

/* mkdir -p with mode 0700 for the leaf and any missing parents. 0 / -1
 * (errno set). */
int paths_mkdir_p(const char *dir);

#endif
