#!/bin/bash
# HTTP benchmark: hearth's GET /v1/models (bearer key checked, so auth runs)
# against nginx serving the same bytes as a static file (2 workers, access
# log off, keep-alive), with wrk -t2 -d$DUR at 8, 64 and 256 connections,
# alternating hearth/nginx $ROUNDS times each. Records requests/s, p99
# latency, server CPU per request (utime+stime from /proc/PID/stat ÷
# requests) and their ratios, plus hearth's idle RSS and RSS under 256
# connections, into bench/http/RESULTS.md (OUT=path to write elsewhere).
# Usage: bench/http/run.sh   (from anywhere; needs ./hearth built, wrk, nginx)
# Env: DUR (default 10s), ROUNDS (default 3), CONNS (default "8 64 256").
set -u
cd "$(dirname "$0")/../.."
REPO=$(pwd)
DUR=${DUR:-10s}
ROUNDS=${ROUNDS:-3}
CONNS=${CONNS:-"8 64 256"}
OUT=${OUT:-bench/http/RESULTS.md}
HZ=$(getconf CLK_TCK)
for c in wrk nginx curl; do command -v $c >/dev/null || { echo "bench: $c missing (scripts/deps.sh)"; exit 1; }; done
HEARTH=${HEARTH_BIN:-./hearth}
[ -x "$HEARTH" ] || { echo "bench: $HEARTH missing: run make"; exit 1; }

TMP=$(mktemp -d /tmp/hearth-bench.XXXXXX)
chmod 755 "$TMP"
HPID=""; NPID=""
cleanup() {
  [ -n "$HPID" ] && kill "$HPID" 2>/dev/null && wait "$HPID" 2>/dev/null
  [ -n "$NPID" ] && kill -QUIT "$NPID" 2>/dev/null && sleep 0.3
  rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

free_port() { node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }

# --- hearth, with a key so auth runs --------------------------------------
mkdir -p "$TMP/data/models"
# A few models so the list renders real objects: minimal valid GGUF headers
# (v3, no tensors, no metadata), listed by file name.
for m in bench-llama-3b bench-qwen-0.5b bench-embed-small; do
  printf 'GGUF\003\000\000\000\000\000\000\000\000\000\000\000\000\000\000\000\000\000\000\000' >"$TMP/data/models/$m.gguf"
done
KEY=$("$HEARTH" keys create --project bench --data "$TMP/data" | grep -v '^\s*$' | tail -n 1)
[ -n "$KEY" ] || { echo "bench: hearth keys create printed no key"; exit 1; }
HPORT=$(free_port)
"$HEARTH" serve --host 127.0.0.1 --port "$HPORT" --data "$TMP/data" >"$TMP/hearth.log" 2>&1 &
HPID=$!
for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$HPORT/health" && break; sleep 0.1; done
curl -sf -o "$TMP/models.json" -H "Authorization: Bearer $KEY" "http://127.0.0.1:$HPORT/v1/models" ||
  { echo "bench: hearth GET /v1/models failed"; cat "$TMP/hearth.log"; exit 1; }
curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer wrong" "http://127.0.0.1:$HPORT/v1/models" | grep -q 401 ||
  echo "bench: warning: a wrong key was not refused (auth may not run)"

# --- nginx, same bytes, own prefix -----------------------------------------
NPORT=$(free_port)
mkdir -p "$TMP/nginx/logs" "$TMP/nginx/tmp" "$TMP/www/v1"
cp "$TMP/models.json" "$TMP/www/v1/models"
chmod -R a+rX "$TMP/www"
cat >"$TMP/nginx/nginx.conf" <<CONF
worker_processes 2;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/logs/error.log warn;
events { worker_connections 2048; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_timeout 65;
  keepalive_requests 1000000;
  client_body_temp_path $TMP/nginx/tmp/body;
  proxy_temp_path $TMP/nginx/tmp/proxy;
  fastcgi_temp_path $TMP/nginx/tmp/fastcgi;
  uwsgi_temp_path $TMP/nginx/tmp/uwsgi;
  scgi_temp_path $TMP/nginx/tmp/scgi;
  server {
    listen 127.0.0.1:$NPORT;
    root $TMP/www;
    location / { default_type application/json; }
  }
}
CONF
nginx -p "$TMP/nginx" -c "$TMP/nginx/nginx.conf" -g 'daemon off;' 2>"$TMP/nginx/logs/stderr" &
NPID=$!
for _ in $(seq 50); do curl -sf -o /dev/null "http://127.0.0.1:$NPORT/v1/models" && break; sleep 0.1; done
cmp -s "$TMP/models.json" <(curl -s "http://127.0.0.1:$NPORT/v1/models") ||
  { echo "bench: nginx does not serve the same bytes"; cat "$TMP/nginx/logs/"*; exit 1; }

# --- measurement helpers -------------------------------------------------------
pids_of() { # the server's processes: hearth itself; nginx master + workers
  if [ "$1" = hearth ]; then echo "$HPID"; else echo "$NPID $(pgrep -P "$NPID" | tr '\n' ' ')"; fi
}
cpu_ticks() { local s=0 p; for p in $(pids_of "$1"); do
  s=$((s + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0))); done; echo $s; }
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$HPID/status"; }
to_ms() { awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n += 0; else if (v ~ /s$/) n *= 1000; printf "%.3f", n }'; }

RAW="$TMP/raw.tsv"   # server conns round rps p99ms cpu_us_per_req errors
PEAK256=0
run_one() { # server conns round
  local srv=$1 c=$2 r=$3 port url t0 t1 log sampler=""
  [ "$srv" = hearth ] && port=$HPORT || port=$NPORT
  url="http://127.0.0.1:$port/v1/models"
  log="$TMP/wrk-$srv-$c-$r.txt"
  t0=$(cpu_ticks "$srv")
  if [ "$srv" = hearth ] && [ "$c" = 256 ]; then
    ( peak=0; while sleep 0.5; do v=$(rss_kb); [ "${v:-0}" -gt $peak ] && peak=$v && echo $peak >"$TMP/peak256"; done ) &
    sampler=$!
  fi
  wrk -t2 -c"$c" -d"$DUR" --latency -H "Authorization: Bearer $KEY" "$url" >"$log" 2>&1
  [ -n "$sampler" ] && kill "$sampler" 2>/dev/null && wait "$sampler" 2>/dev/null
  t1=$(cpu_ticks "$srv")
  local rps reqs p99 errs cpu
  rps=$(awk '/^Requests\/sec:/ {print $2}' "$log")
  reqs=$(awk '/requests in/ {print $1}' "$log")
  p99=$(to_ms "$(awk '$1 == "99%" {print $2}' "$log")")
  errs=$(awk '/Non-2xx/ {n += $NF} /Socket errors/ {gsub(/,/, ""); n += $4 + $6 + $8 + $10} END {print n + 0}' "$log")
  cpu=$(awk -v d=$((t1 - t0)) -v hz="$HZ" -v n="${reqs:-0}" 'BEGIN { if (n > 0) printf "%.2f", d / hz / n * 1e6; else print "nan" }')
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$srv" "$c" "$r" "${rps:-0}" "$p99" "$cpu" "$errs" >>"$RAW"
  printf '  %-6s c=%-3s round %s: %10s req/s  p99 %8s ms  cpu %6s us/req  errors %s\n' "$srv" "$c" "$r" "${rps:-0}" "$p99" "$cpu" "$errs"
}

IDLE_RSS=$(rss_kb)
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
echo "bench: hearth :$HPORT (pid $HPID, idle RSS ${IDLE_RSS} kB), nginx :$NPORT, body $(stat -c %s "$TMP/models.json") bytes, wrk -t2 -d$DUR"
: >"$RAW"
for c in $CONNS; do
  wrk -t2 -c"$c" -d2s -H "Authorization: Bearer $KEY" "http://127.0.0.1:$HPORT/v1/models" >/dev/null 2>&1  # warm-up
  wrk -t2 -c"$c" -d2s "http://127.0.0.1:$NPORT/v1/models" >/dev/null 2>&1
  for r in $(seq "$ROUNDS"); do
    run_one hearth "$c" "$r"
    run_one nginx "$c" "$r"
  done
done
PEAK256=$(cat "$TMP/peak256" 2>/dev/null || echo 0)
HWM=$(awk '/^VmHWM/ {print $2}' "/proc/$HPID/status")
LOAD1=$(cut -d' ' -f1-3 /proc/loadavg)

# --- report ----------------------------------------------------------------------
median() { sort -g | awk '{a[NR] = $1} END {if (NR % 2) print a[(NR + 1) / 2]; else printf "%.2f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
col() { awk -F'\t' -v s="$1" -v c="$2" -v k="$3" '$1 == s && $2 == c {print $k}' "$RAW"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
# Median over rounds of hearth/nginx req/s measured back to back (robust to
# load that drifts during the session).
paired() { paste <(col hearth "$1" 4) <(col nginx "$1" 4) | awk '$2 > 0 {printf "%.3f\n", $1 / $2}' | median; }
bar() { case $1 in 8) echo 0.90;; *) echo 1.00;; esac; }
{
  echo "# HTTP benchmark: hearth vs nginx, GET /v1/models"
  echo
  echo "Recorded $(date -u '+%Y-%m-%d %H:%M UTC') by \`bench/http/run.sh\` (DUR=$DUR ROUNDS=$ROUNDS)."
  echo "hearth binary: $HEARTH, tree at commit $(git rev-parse --short HEAD 2>/dev/null)$(git diff --quiet HEAD -- src 2>/dev/null || echo ' (src/ had uncommitted changes)')."
  echo "Machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), shared with other"
  echo "workloads (load average before/after: $LOAD0 / $LOAD1), so absolute numbers are noisy; each"
  echo "server ran $ROUNDS times per concurrency, alternating hearth/nginx, and the table shows medians."
  echo "wrk \`-t2 -d$DUR --latency\` with \`Authorization: Bearer <key>\` (hearth checks it: keys mode, one key created)."
  echo "nginx: 2 workers, access_log off, keep-alive, sendfile + tcp_nopush (Debian's defaults), serving the $(stat -c %s "$TMP/models.json") bytes hearth returns, as a static file."
  echo "ratio: median hearth req/s ÷ median nginx req/s; paired ratio: median over rounds of the ratio of"
  echo "the two back-to-back runs. CPU/req: server utime+stime (all its processes) over the run ÷ requests served."
  echo
  echo "| conns | hearth req/s | nginx req/s | ratio (bar) | paired ratio | hearth p99 ms | nginx p99 ms | hearth CPU µs/req | nginx CPU µs/req | CPU ratio | errors h/n |"
  echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  for c in $CONNS; do
    hr=$(col hearth "$c" 4 | median); nr=$(col nginx "$c" 4 | median)
    hp=$(col hearth "$c" 5 | median); np=$(col nginx "$c" 5 | median)
    hc=$(col hearth "$c" 6 | median); nc=$(col nginx "$c" 6 | median)
    he=$(col hearth "$c" 7 | awk '{s += $1} END {print s + 0}'); ne=$(col nginx "$c" 7 | awk '{s += $1} END {print s + 0}')
    rr=$(ratio "$hr" "$nr"); ok=$(awk -v r="$rr" -v b="$(bar "$c")" 'BEGIN { print (r + 0 >= b) ? "ok" : "below" }')
    echo "| $c | $hr | $nr | **$rr** (≥ $(bar "$c") $ok) | $(paired "$c") | $hp | $np | $hc | $nc | $(ratio "$hc" "$nc") | $he/$ne |"
  done
  echo
  echo "hearth memory: idle RSS $((IDLE_RSS / 1024)).$(((IDLE_RSS % 1024) * 10 / 1024)) MB (bar ≤ 8 MB);"\
       "peak RSS sampled during the 256-connection runs $((PEAK256 / 1024)).$(((PEAK256 % 1024) * 10 / 1024)) MB (bar ≤ 32 MB);"\
       "VmHWM at the end $((HWM / 1024)).$(((HWM % 1024) * 10 / 1024)) MB."
  echo
  echo "All runs (server, conns, round, req/s, p99 ms, CPU µs/req, errors):"
  echo
  echo '```'
  cat "$RAW"
  echo '```'
  echo
  echo "Reproduce: \`bench/http/run.sh\` (needs \`make\`, wrk and nginx from scripts/deps.sh)."
} >"$OUT"
echo "bench: wrote $OUT"
