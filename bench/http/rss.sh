#!/bin/sh
# Idle memory of `hearth serve`: starts ./hearth with a temp data directory,
# (keys mode) creates a key, makes one authenticated GET /v1/models, waits,
# then prints VmRSS / smaps_rollup figures. Usage:
#   bench/http/rss.sh [keys|open] [--maps]
# --maps also prints the per-mapping Rss (kB) of the largest mappings.
# RSS_LOAD_CONNS=N (e.g. 256) then runs wrk for 3 s with N connections on the
# same request and prints the peak (VmHWM) and the idle VmRSS after it.
# Knows nothing about hearth's internals; needs curl (and wrk for the load).
set -eu
MODE=${1:-keys}
MAPS=${2:-}
BIN=${HEARTH_BIN:-./hearth}
PORT=${RSS_PORT:-$((20000 + $$ % 20000))}
DIR=$(mktemp -d)
PID=
cleanup() {
  [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
  rm -rf "$DIR"
}
trap cleanup EXIT INT TERM

KEY=sk-anything
if [ "$MODE" = keys ]; then
  KEY=$("$BIN" keys create --data "$DIR" 2>/dev/null | grep -o 'sk-[A-Za-z0-9_-]*' | head -1)
fi
"$BIN" serve --host 127.0.0.1 --port "$PORT" --data "$DIR" >"$DIR/log" 2>&1 &
PID=$!
i=0
until curl -s -o /dev/null "http://127.0.0.1:$PORT/health"; do
  i=$((i + 1))
  [ $i -gt 100 ] && { echo "server did not start" >&2; cat "$DIR/log" >&2; exit 1; }
  sleep 0.05
done
sleep 0.3
rss() { awk '/^VmRSS/ {print $2}' /proc/$PID/status; }
echo "mode=$MODE startup VmRSS_kB=$(rss)"
CODE=$(curl -s -o "$DIR/out" -w '%{http_code}' -H "Authorization: Bearer $KEY" \
  "http://127.0.0.1:$PORT/v1/models")
[ "$CODE" = 200 ] || { echo "GET /v1/models -> $CODE" >&2; cat "$DIR/out" >&2; exit 1; }
sleep 0.5
echo "mode=$MODE after-request VmRSS_kB=$(rss)"
# Libraries hearth opens only on first use (dlopen); mapped at idle = a
# regression (something linked them directly again).
HEAVY=$(grep -oE 'lib(curl|crypto|ssl|icuuc|stdc\+\+)[^/ ]*\.so[^/ ]*$' /proc/$PID/maps | sort -u | tr '\n' ' ')
echo "  lazily-loaded libraries mapped at idle: ${HEAVY:-none}"
awk '/^(Rss|Pss|Anonymous|Private_Dirty|Shared_Clean):/ {printf "  %s %s kB\n", $1, $2}' \
  /proc/$PID/smaps_rollup
if [ "$MAPS" = --maps ]; then
  awk '/^[0-9a-f]+-[0-9a-f]+ / {name = (NF >= 6 ? $6 : "[anon]")}
       /^Rss:/ {sum[name] += $2}
       END {for (n in sum) if (sum[n] > 0) printf "%8d %s\n", sum[n], n}' \
    /proc/$PID/smaps | sort -rn | head -40
fi
if [ -n "${RSS_LOAD_CONNS:-}" ]; then
  wrk -t 2 -c "$RSS_LOAD_CONNS" -d 3s -H "Authorization: Bearer $KEY" \
    "http://127.0.0.1:$PORT/v1/models" | grep -E 'Requests/sec|Non-2xx|errors' || true
  sleep 1.5 # serve trims idle memory once a second
  echo "mode=$MODE conns=$RSS_LOAD_CONNS peak VmHWM_kB=$(awk '/^VmHWM/ {print $2}' /proc/$PID/status) idle-after VmRSS_kB=$(rss)"
fi
