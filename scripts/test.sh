#!/bin/bash
# Runs every unit test binary (build/tests/test_*) and then the end-to-end
# suite (tests/e2e), sums their "N passed, N failed[, N skipped]" lines and
# prints the total as the last line. Exit status is non-zero on any failure.
set -u
cd "$(dirname "$0")/.."
P=0; F=0; S=0
add() { # parse "N passed, N failed[, N skipped]" from the last matching line
  local line; line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$1" | tail -n 1)
  if [ -z "$line" ]; then echo "  (no result line: counted as 1 failure)"; F=$((F+1)); return; fi
  local p f s; p=$(echo "$line" | sed -E 's/^([0-9]+) passed.*/\1/')
  f=$(echo "$line" | sed -E 's/.* ([0-9]+) failed.*/\1/')
  s=$(echo "$line" | sed -nE 's/.* ([0-9]+) skipped.*/\1/p'); s=${s:-0}
  P=$((P+p)); F=$((F+f)); S=$((S+s))
}
out=$(mktemp); trap 'rm -f "$out"' EXIT
for t in build/tests/test_*; do
  [ -x "$t" ] || continue
  echo "== unit $(basename "$t")"
  "$t" >"$out" 2>&1; rc=$?
  cat "$out"
  add "$out"
  if [ $rc -ne 0 ] && ! grep -qE '[1-9][0-9]* failed' "$out"; then F=$((F+1)); echo "  (exit $rc)"; fi
done
if [ "${1:-}" != "--unit-only" ] && [ -f tests/e2e/package.json ]; then
  echo "== e2e"
  if [ ! -d tests/e2e/node_modules ]; then (cd tests/e2e && npm ci --no-audit --no-fund --loglevel=error) || { echo "npm ci failed"; F=$((F+1)); }; fi
  node tests/e2e/run.mjs 2>&1 | tee "$out"
  add "$out"
fi
echo "$P passed, $F failed, $S skipped"
[ $F -eq 0 ]
