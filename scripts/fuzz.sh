#!/bin/bash
# Builds the libFuzzer targets in fuzz/ with clang (fuzzer + ASan + UBSan),
# compiling the parser sources they exercise directly, and runs each for
# FUZZ_SECONDS (default 60) over its seed corpus fuzz/corpus/<target>/ plus a
# growing working corpus fuzz/corpus-<target>/ (git-ignored), with the
# dictionary fuzz/<target>.dict when present. Crashes land in build/fuzz/ as
# crash-<target>-*; the script exits non-zero if any target found one. Usage: scripts/fuzz.sh [TARGET...]   (default: all)
# Env: FUZZ_SECONDS, FUZZ_JOBS (parallel workers per target, default 1),
#      CLANG (default clang).
set -u
cd "$(dirname "$0")/.."
REPO=$(pwd)
CLANG=${CLANG:-clang}
SECS=${FUZZ_SECONDS:-60}
JOBS=${FUZZ_JOBS:-1}
OUT=build/fuzz
FLAGS="-g -O1 -std=c11 -D_GNU_SOURCE -Isrc -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"

# target -> the src files it links and the pkg-config packages they need.
declare -A SRCS=(
  [fuzz_jsonbody]="src/core/jsonbody.c src/core/error.c"
  [fuzz_multipart]="src/http/multipart.c"
  [fuzz_gguf]="src/engine/gguf.c src/engine/quant.c"
)
declare -A PKGS=(
  [fuzz_jsonbody]="jansson"
  [fuzz_multipart]=""
  [fuzz_gguf]=""
)

command -v "$CLANG" >/dev/null || { echo "fuzz: $CLANG not found (scripts/deps.sh installs clang)"; exit 1; }
mkdir -p "$OUT"
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(fuzz_jsonbody fuzz_multipart fuzz_gguf)
status=0
for t in "${targets[@]}"; do
  [ -n "${SRCS[$t]+x}" ] || { echo "fuzz: unknown target $t"; status=1; continue; }
  pc_cflags=""; pc_libs=""
  if [ -n "${PKGS[$t]}" ]; then
    pc_cflags=$(pkg-config --cflags ${PKGS[$t]}); pc_libs=$(pkg-config --libs ${PKGS[$t]})
  fi
  echo "== fuzz: building $t"
  # shellcheck disable=SC2086
  if ! $CLANG $FLAGS $pc_cflags -o "$OUT/$t" "fuzz/$t.c" ${SRCS[$t]} $pc_libs; then
    echo "fuzz: build of $t failed"; status=1; continue
  fi
  mkdir -p "fuzz/corpus-$t" "fuzz/corpus/$t"
  echo "== fuzz: running $t for ${SECS}s"
  log="$OUT/$t.log"
  par=(); [ "$JOBS" -gt 1 ] && par=(-jobs="$JOBS" -workers="$JOBS")
  [ -f "fuzz/$t.dict" ] && par+=(-dict="$REPO/fuzz/$t.dict")
  (cd "$OUT" && exec "./$t" -max_total_time="$SECS" "${par[@]}" -print_final_stats=1 \
    -artifact_prefix="crash-$t-" -max_len=8192 -timeout=10 -rss_limit_mb=2048 \
    "$REPO/fuzz/corpus-$t" "$REPO/fuzz/corpus/$t") >"$log" 2>&1
  rc=$?
  grep -E '^(#[0-9]+.*(DONE|pulse)|stat::|==[0-9]+==ERROR|SUMMARY)' "$log" | tail -n 8
  if [ $rc -ne 0 ] || ls "$OUT"/crash-"$t"-* >/dev/null 2>&1; then
    echo "fuzz: $t FOUND A PROBLEM (exit $rc): see $log and $OUT/crash-$t-*"
    status=1
  else
    echo "fuzz: $t clean"
  fi
done
exit $status
