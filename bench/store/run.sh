#!/bin/sh
# Side-by-side store/auth micro-benchmark: this tree's src/store/sqlite.c
# against the one at BASE (default 92a10a0, the first SQLite backend),
# alternated RUNS times (default 3) in one session; numbers are us/op, only
# their ratios mean anything on a shared machine.
# Usage (repo root, after `make`): bench/store/run.sh [BASE] [RUNS]
set -e
BASE=${1:-92a10a0}
RUNS=${2:-3}
OUT=build/bench-store
mkdir -p $OUT
CC="cc -O2 -std=c11 -D_GNU_SOURCE -Isrc $(pkg-config --cflags jansson)"
LIBS="$(pkg-config --libs jansson sqlite3 libcrypto) -pthread"
OBJS="build/src/core/ids.o build/src/core/paths.o build/src/core/error.o
build/src/core/pagination.o build/src/core/jsonbody.o build/src/core/auth.o"
git show "$BASE:src/store/sqlite.c" > $OUT/sqlite_base.c
$CC -c $OUT/sqlite_base.c -o $OUT/sqlite_base.o
$CC -c src/store/sqlite.c -o $OUT/sqlite_head.o
for v in base head; do
  $CC -o $OUT/store_bench_$v bench/store/store_bench.c $OUT/sqlite_$v.o $OBJS $LIBS
done
i=1
while [ $i -le "$RUNS" ]; do
  for v in base head; do
    echo "== $v ($( [ $v = base ] && echo "$BASE" || git rev-parse --short HEAD)) run $i"
    $OUT/store_bench_$v
  done
  i=$((i + 1))
done
