/* The expiry sweeper: a background thread that every `interval` seconds
 *  - deletes files whose expires_at has passed (object + blob),
 *  - marks uploads past their expiry (1 hour after creation, unless
 *    completed/cancelled) "expired" and deletes their parts' blobs,
 *  - removes temp blobs left by a crash (older than a day).
 * It relies on the per-kind conventions documented in store/store.h:
 *  - "file": store_obj.expires_at = when it expires (0 = never),
 *    internal.blob = its bytes;
 *  - "upload": store_obj.expires_at = created_at + 3600 (may stay set after
 *    completion/cancel: only a "pending" upload becomes "expired"; any parts
 *    left over are deleted either way, and the column is then reset to 0);
 *  - "upload_part": filter = upload id, internal.blob = its bytes.
 * Knows nothing about HTTP. */
#ifndef HEARTH_JOBS_SWEEPER_H
#define HEARTH_JOBS_SWEEPER_H

#include "store/store.h"

typedef struct sweeper sweeper;

/* One pass now, on the calling thread (tests; also what the thread runs).
 * now = Unix seconds. Returns how many objects it expired/deleted, or -1. */
int sweeper_run_once(store *s, long long now);

/* Starts the thread (interval in seconds, >= 1). NULL on failure. */
sweeper *sweeper_start(store *s, int interval);
/* Wakes the thread, waits for it to finish its current pass and exit, and
 * frees it. NULL is fine. Call before store_close. */
void sweeper_stop(sweeper *sw);

#endif
