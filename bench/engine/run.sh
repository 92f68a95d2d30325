#!/usr/bin/env bash
# Engine benchmark, side by side in one run: `hearth bench` against llama.cpp
# (node-llama-cpp 3.21.1, bench/engine/llamacpp.mjs) on the same GGUF files
# and thread counts, alternating the two engines round by round (the machine
# is shared and noisy). Models are random-weight fixtures of real shapes made
# by `hearth fixture` into a cache directory (never committed):
#   smollm2-135m-q8_0    SmolLM2-135M shape (llama), Q8_0
#   qwen2.5-0.5b-q8_0    Qwen2.5-0.5B shape (qwen2), Q8_0
#   qwen2.5-0.5b-q4_k_m  Qwen2.5-0.5B shape (qwen2), Q4_K_M mix
# and, when named in --models: qwen2.5-1.5b-q4_k_m (rows multiples of 256:
# really Q4_K), gemma3-1b-q8_0, gemma2-2b-q4_k_m.
# Writes the raw JSON lines to bench/out/engine-results.jsonl and the table
# to bench/engine/RESULTS.md (bench/engine/report.mjs).
#
# Usage: bench/engine/run.sh [--rounds 3] [--threads "1 2"]
#          [--models "smollm2-135m-q8_0 qwen2.5-0.5b-q8_0 qwen2.5-0.5b-q4_k_m"]
#          [--engines "hearth llama.cpp"] [--fa "off on"] [--fa-mt off]
#          [--ref-threads "1"]
#          [--prompt-tokens 512] [--gen-tokens 128]
#          [--parallel "1 4 16"]
#          [--cache DIR] [--out bench/engine/RESULTS.md]
#          [--quick]   (64-token prompt, 16 generated, 1 round, SmolLM2 only,
#                       results to bench/out/RESULTS-quick.md: a smoke test)
# llama.cpp runs with flash attention off and on at 1 thread (--fa), and the
# better of the two is the reference; at more threads only --fa-mt (off).
# llama.cpp runs only at --ref-threads (default 1: node-llama-cpp's binding
# loses ~13 ms/token at 2 threads; 2 threads are judged by bandwidth share).
# --parallel: hearth alone, batched decode of the first model at all cores,
# N sequences (32-token prompts) one token each per pass, as the server's
# continuous batching runs them ("" skips it).
set -euo pipefail
cd "$(dirname "$0")/../.."

rounds=3
threads="1 2"
models="smollm2-135m-q8_0 qwen2.5-0.5b-q8_0 qwen2.5-0.5b-q4_k_m"
engines="hearth llama.cpp"
fas="off on"
fas_mt="off" # llama.cpp at >1 thread is context only (binding overhead)
ref_threads="1" # thread counts at which llama.cpp runs too
ptok=512
gtok=128
parallel="1 4 16"

cache="${HEARTH_BENCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/hearth-bench}"
out=bench/engine/RESULTS.md
cmdline="bench/engine/run.sh $*"

while [ $# -gt 0 ]; do
  case "$1" in
  --rounds) rounds=$2; shift 2 ;;
  --threads) threads=$2; shift 2 ;;
  --models) models=$2; shift 2 ;;
  --engines) engines=$2; shift 2 ;;
  --fa) fas=$2; shift 2 ;;
  --fa-mt) fas_mt=$2; shift 2 ;;
  --ref-threads) ref_threads=$2; shift 2 ;;
  --prompt-tokens) ptok=$2; shift 2 ;;
  --gen-tokens) gtok=$2; shift 2 ;;
  --parallel) parallel=$2; shift 2 ;;
  --cache) cache=$2; shift 2 ;;
  --out) out=$2; shift 2 ;;
  --quick)
    rounds=1 ptok=64 gtok=16 models=smollm2-135m-q8_0 parallel="1 4"
    out=bench/out/RESULTS-quick.md
    shift ;;
  -h | --help) sed -n '2,28p' "$0"; exit 0 ;;
  *) echo "run.sh: unknown option $1" >&2; exit 2 ;;
  esac
done

# Fixture command line of each benchmark model (hearth fixture's shapes and
# types); the seed is fixed so every run measures the same file.
fixture_args() {
  case "$1" in
  smollm2-135m-q8_0) echo "--preset smollm2-135m --type q8_0 --seed 1" ;;
  qwen2.5-0.5b-q8_0) echo "--preset qwen2.5-0.5b --type q8_0 --seed 1" ;;
  qwen2.5-0.5b-q4_k_m) echo "--preset qwen2.5-0.5b --type Q4_K_M --seed 1" ;;
  # not in the default list (bigger files): --models to add them
  qwen2.5-1.5b-q4_k_m) echo "--preset qwen2.5-0.5b --n-embd 1536 --n-ff 8960 --n-layer 28 --n-head 12 --n-head-kv 2 --type Q4_K_M --seed 1" ;;
  gemma3-1b-q8_0) echo "--preset gemma3-1b --type q8_0 --seed 1" ;;
  gemma2-2b-q4_k_m) echo "--preset gemma2-2b --type Q4_K_M --seed 1" ;;
  *) echo "run.sh: unknown model $1" >&2; return 1 ;;
  esac
}

want() { case " $engines " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

mkdir -p "$cache" bench/out
jsonl=bench/out/engine-results.jsonl
: >"$jsonl"
loadavg() { printf '{"meta":"loadavg","value":"%s"}\n' "$(cut -d' ' -f1-3 /proc/loadavg)" >>"$jsonl"; }
loadavg

if want hearth; then make -s hearth; fi
if want llama.cpp && [ ! -d scripts/reference/node_modules/node-llama-cpp ]; then
  (cd scripts/reference && npm ci --no-audit --no-fund >/dev/null)
fi
[ -x ./hearth ] || make -s hearth # the fixture maker

for m in $models; do
  f="$cache/$m.gguf"
  args=$(fixture_args "$m")
  if [ ! -s "$f" ] || [ "$(cat "$f.cmd" 2>/dev/null)" != "$args" ]; then
    echo "making $f: hearth fixture $args" >&2
    # shellcheck disable=SC2086
    ./hearth fixture $args --out "$f.tmp"
    mv "$f.tmp" "$f"
    echo "$args" >"$f.cmd"
  fi
done

# One JSON line per measurement, tagged with what was measured.
emit() { # key file threads engine fa round json
  printf '{"key":"%s","file":"%s","threads":%s,"engine":"%s","fa":%s,"round":%s,"result":%s}\n' \
    "$1" "$2" "$3" "$4" "$5" "$6" "$7" >>"$jsonl"
}

for m in $models; do
  f="$cache/$m.gguf"
  for t in $threads; do
    for r in $(seq 1 "$rounds"); do
      if want hearth; then
        echo "[$m t=$t round $r] hearth" >&2
        j=$(./hearth bench --model "$f" --threads "$t" --prompt-tokens "$ptok" \
          --gen-tokens "$gtok" --json | tail -n 1)
        emit "$m" "$f" "$t" hearth null "$r" "$j"
      fi
      if want llama.cpp && [[ " $ref_threads " == *" $t "* ]]; then
        fa_list=$fas
        [ "$t" = 1 ] || fa_list=$fas_mt
        for fa in $fa_list; do
          echo "[$m t=$t round $r] llama.cpp fa=$fa" >&2
          j=$(node bench/engine/llamacpp.mjs --model "$f" --threads "$t" \
            --prompt-tokens "$ptok" --gen-tokens "$gtok" --flash-attention "$fa" |
            tail -n 1)
          emit "$m" "$f" "$t" llama.cpp "\"$fa\"" "$r" "$j"
        done
      fi
    done
  done
done

# batched decode (hearth only): key "batched", one line per N and round
if want hearth && [ -n "$parallel" ]; then
  m=${models%% *}
  f="$cache/$m.gguf"
  t=$(nproc)
  for r in $(seq 1 "$rounds"); do
    for p in $parallel; do
      echo "[$m t=$t round $r] hearth --parallel $p" >&2
      j=$(./hearth bench --model "$f" --threads "$t" --prompt-tokens 32 \
        --gen-tokens "$gtok" --parallel "$p" --no-bandwidth --json | tail -n 1)
      emit "batched" "$f" "$t" hearth null "$r" "$j"
    done
  done
fi

loadavg
node bench/engine/report.mjs "$jsonl" "$cmdline" >"$out"
cat "$out"
