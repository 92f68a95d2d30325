#!/usr/bin/env bash
# Serving benchmark (issue 4): `hearth serve` with the SmolLM2-135M-shaped
# Q8_0 random-weight fixture, driven by bench/serving/load.mjs over raw HTTP
# with streaming chat completions. Self-contained: builds ./hearth (make)
# unless HEARTH_BIN is set, makes (or reuses) the fixture in the cache of
# bench/engine/run.sh, starts a quiet server on a free port with a temp data
# directory and a key, and stops it at the end. In each round, alternating:
#   ttft  1 client: request sent -> first content chunk, unique prompts
#   raw   `hearth bench` time to first token (prefill of as many prompt
#         tokens as the server prefilled + picking the first token; a
#         separate process, while the server idles)
#   raw decode  `hearth bench` greedy decode tokens/s of one sequence (the
#         engine's single-stream speed, for scale)
#   load  1, 4, 16 concurrent streaming clients, each R requests back to
#         back of max_tokens 128 (ignore_eos: hearth's benchmark extension,
#         when the server takes it): aggregate tokens/s
# Then medians over rounds: tokens/s at each client count, the ratio
# 16 clients / 1 client (bar >= 4), TTFT, raw engine ms and their difference,
# the HTTP + scheduler overhead (bar < 2 ms). Raw JSON lines go to
# bench/out/serving-results.jsonl, the table to bench/serving/RESULTS.md
# (bench/serving/report.mjs) and stdout.
#
# Usage: bench/serving/run.sh [--rounds 5] [--clients "1 4 16"]
#          [--requests 2] [--max-tokens 128] [--load-prompt-tokens 32]
#          [--ttft-prompt-tokens 64] [--ttft-n 10] [--threads N]
#          [--cache DIR] [--out bench/serving/RESULTS.md]
#          [--quick]   (1 round, 1/4 clients, 1 request, 32 tokens, results
#                       to bench/out/serving-quick.md: a smoke test)
# Env: SERVE_ARGS   more `hearth serve` flags (e.g. scheduler settings)
#      HEARTH_BIN   another binary (default ./hearth, built when missing)
# --threads N: engine threads of both the server and `hearth bench`
# (default: both use all cores); needs serve's engine-threads flag.
set -euo pipefail
cd "$(dirname "$0")/../.."

rounds=5
clients="1 4 16"
requests=2
max_tokens=128
load_ptok=32
ttft_ptok=64
ttft_n=10
threads=""
cache="${HEARTH_BENCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/hearth-bench}"
out=bench/serving/RESULTS.md
cmdline="bench/serving/run.sh $*"

while [ $# -gt 0 ]; do
  case "$1" in
  --rounds) rounds=$2; shift 2 ;;
  --clients) clients=$2; shift 2 ;;
  --requests) requests=$2; shift 2 ;;
  --max-tokens) max_tokens=$2; shift 2 ;;
  --load-prompt-tokens) load_ptok=$2; shift 2 ;;
  --ttft-prompt-tokens) ttft_ptok=$2; shift 2 ;;
  --ttft-n) ttft_n=$2; shift 2 ;;
  --threads) threads=$2; shift 2 ;;
  --cache) cache=$2; shift 2 ;;
  --out) out=$2; shift 2 ;;
  --quick)
    rounds=1 clients="1 4" requests=1 max_tokens=32 ttft_n=5
    out=bench/out/serving-quick.md
    shift ;;
  -h | --help) sed -n '2,30p' "$0"; exit 0 ;;
  *) echo "run.sh: unknown option $1" >&2; exit 2 ;;
  esac
done

HEARTH=${HEARTH_BIN:-./hearth}
if [ -z "${HEARTH_BIN:-}" ]; then make -s hearth >&2; fi
[ -x "$HEARTH" ] || { echo "run.sh: $HEARTH missing" >&2; exit 1; }
command -v node >/dev/null || { echo "run.sh: node missing (scripts/deps.sh)" >&2; exit 1; }

# The fixture, made once with a fixed seed (as bench/engine/run.sh does).
model=smollm2-135m-q8_0
fargs="--preset smollm2-135m --type q8_0 --seed 1"
mkdir -p "$cache" bench/out "$(dirname "$out")"
f="$cache/$model.gguf"
if [ ! -s "$f" ] || [ "$(cat "$f.cmd" 2>/dev/null)" != "$fargs" ]; then
  echo "making $f: hearth fixture $fargs" >&2
  # shellcheck disable=SC2086
  "$HEARTH" fixture $fargs --out "$f.tmp"
  mv "$f.tmp" "$f"
  echo "$fargs" >"$f.cmd"
fi

TMP=$(mktemp -d /tmp/hearth-serving.XXXXXX)
SPID=""
cleanup() {
  if [ -n "$SPID" ]; then
    kill "$SPID" 2>/dev/null || true
    wait "$SPID" 2>/dev/null || true
  fi
  rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

mkdir -p "$TMP/data/models"
ln -s "$(cd "$(dirname "$f")" && pwd)/$(basename "$f")" "$TMP/data/models/$model.gguf"
KEY=$("$HEARTH" keys create --project bench --data "$TMP/data" | grep -v '^\s*$' | tail -n 1)
[ -n "$KEY" ] || { echo "run.sh: hearth keys create printed no key" >&2; exit 1; }
PORT=$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
alias_name=gpt-4o-mini # the application's model name, served by the fixture
serve_args=(serve --log-level info --host 127.0.0.1 --port "$PORT" --data "$TMP/data"
  --alias "$alias_name=$model")
bench_threads=()
if [ -n "$threads" ]; then
  serve_args+=(--engine-threads "$threads")
  bench_threads=(--threads "$threads")
fi
# shellcheck disable=SC2206
serve_args+=(${SERVE_ARGS:-})
echo "starting: $HEARTH ${serve_args[*]}" >&2
"$HEARTH" "${serve_args[@]}" >"$TMP/serve.log" 2>&1 &
SPID=$!
for _ in $(seq 150); do
  curl -sf -o /dev/null "http://127.0.0.1:$PORT/health" 2>/dev/null && break
  kill -0 "$SPID" 2>/dev/null || { echo "run.sh: hearth serve exited:" >&2; cat "$TMP/serve.log" >&2; exit 1; }
  sleep 0.1
done

load() { node bench/serving/load.mjs "$@" --base "http://127.0.0.1:$PORT" --key "$KEY" --model "$alias_name"; }

jsonl=bench/out/serving-results.jsonl
: >"$jsonl"
meta() { printf '{"meta":"%s","value":"%s"}\n' "$1" "$2" >>"$jsonl"; }
meta loadavg "$(cut -d' ' -f1-3 /proc/loadavg)"
meta cpus "$(nproc)"
meta cpu "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
meta commit "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
meta threads "${threads:-all cores}"
meta serve_args "${SERVE_ARGS:-}"
tag() { sed "s/^{/{\"round\":$1,/" >>"$jsonl"; }

# Warm-up: loads the model, and shows the plumbing works (or why not).
echo "warm-up (loads the model)" >&2
if ! load load --clients 1 --requests 1 --max-tokens 8 >"$TMP/warm.json" 2>"$TMP/warm.err"; then
  echo "run.sh: the warm-up request failed: $(cat "$TMP/warm.err")" >&2
  tail -n 20 "$TMP/serve.log" >&2
  exit 1
fi
tag 0 <"$TMP/warm.json"
for r in $(seq 1 "$rounds"); do
  echo "[round $r] server ttft, 1 client" >&2
  load ttft --n "$ttft_n" --prompt-tokens "$ttft_ptok" \
    --server-log "$TMP/serve.log" >"$TMP/ttft.json"
  tag "$r" <"$TMP/ttft.json"
  # The raw engine prefills as many tokens as the server did: the prompt
  # less what the server found cached (only the template's opening can be).
  ptok=$(node -e 'console.log(JSON.parse(require("fs").readFileSync(process.argv[1],"utf8")).uncached_tokens_median)' "$TMP/ttft.json")
  echo "[round $r] raw engine: hearth bench --prompt-tokens $ptok" >&2
  "$HEARTH" bench --model "$f" "${bench_threads[@]}" --prompt-tokens "$ptok" --gen-tokens 1 \
    --reps "$ttft_n" --no-bandwidth --json | tail -n 1 | sed "s/^{/{\"mode\":\"raw\",\"reps\":$ttft_n,/" | tag "$r"
  echo "[round $r] raw engine decode: hearth bench --prompt-tokens $load_ptok --gen-tokens $max_tokens" >&2
  "$HEARTH" bench --model "$f" "${bench_threads[@]}" --prompt-tokens "$load_ptok" \
    --gen-tokens "$max_tokens" --reps 2 --no-bandwidth --json | tail -n 1 |
    sed 's/^{/{"mode":"raw_decode",/' | tag "$r"
  for c in $clients; do
    echo "[round $r] load, $c clients x $requests requests x $max_tokens tokens" >&2
    load load --clients "$c" --requests "$requests" --max-tokens "$max_tokens" \
      --prompt-tokens "$load_ptok" | tag "$r"
  done
done
meta loadavg "$(cut -d' ' -f1-3 /proc/loadavg)"
kill -0 "$SPID" 2>/dev/null || { echo "run.sh: the server died:" >&2; tail -n 20 "$TMP/serve.log" >&2; exit 1; }

node bench/serving/report.mjs "$jsonl" "$cmdline" >"$out"
cat "$out"
