#!/usr/bin/env bash
# Regenerates every golden file in tests/golden/: makes each fixture with
# `hearth fixture` (seeded, deterministic) into a temp dir, records
# llama.cpp's outputs on it with scripts/reference/record.mjs at 1 thread, and
# writes tests/golden/<name>.golden.json carrying the exact fixture command,
# so tests can rebuild the same file and compare without node or ../shared.
#
# Usage: scripts/reference/record-all.sh [name-filter-regex]
set -euo pipefail
cd "$(dirname "$0")/../.."

# name | hearth fixture arguments (without --out). The 46- and 62-layer
# gemmas take the query scale llama.cpp gives Gemma 2 27B / Gemma 3 27B
# (told apart by their layer count): 1/sqrt(n_embd / n_head). A gemma3
# without sliding window soft-caps its logits when the file says so. Gemma2's
# sliding layers keep the global rope base and scale (gemma3's do not); its
# soft caps default to 50 and 30 when the file has no keys.
GOLDENS="
tiny-llama-f32|--preset tiny-llama --type f32 --seed 11
tiny-llama-f16|--preset tiny-llama --type f16 --seed 12
tiny-llama-bf16|--preset tiny-llama --type bf16 --seed 13
tiny-llama-q8_0|--preset tiny-llama --type q8_0 --seed 14
tiny-llama-q4_0|--preset tiny-llama --type q4_0 --seed 15
tiny-llama-q4_1|--preset tiny-llama --type q4_1 --seed 16
tiny-llama-q5_0|--preset tiny-llama --type q5_0 --seed 17
tiny-llama-q5_1|--preset tiny-llama --type q5_1 --seed 18
tiny-llama-q2_K|--preset tiny-llama --type q2_K --seed 19
tiny-llama-q3_K|--preset tiny-llama --type q3_K --seed 20
tiny-llama-q4_K|--preset tiny-llama --type q4_K --seed 21
tiny-llama-q5_K|--preset tiny-llama --type q5_K --seed 22
tiny-llama-q6_K|--preset tiny-llama --type q6_K --seed 23
tiny-llama-iq4_nl|--preset tiny-llama --type iq4_nl --seed 24
tiny-llama-iq4_xs|--preset tiny-llama --type iq4_xs --seed 25
tiny-llama-Q4_K_M|--preset tiny-llama --type Q4_K_M --seed 26
tiny-llama-bpe-q8_0|--preset tiny-llama-bpe --type q8_0 --seed 31
tiny-qwen2-f32|--preset tiny-qwen2 --type f32 --seed 41
tiny-qwen2-f16|--preset tiny-qwen2 --type f16 --seed 42
tiny-qwen2-q8_0|--preset tiny-qwen2 --type q8_0 --seed 43
tiny-qwen2-q4_0|--preset tiny-qwen2 --type q4_0 --seed 44
tiny-qwen2-q4_K|--preset tiny-qwen2 --type q4_K --seed 45
tiny-qwen2-q6_K|--preset tiny-qwen2 --type q6_K --seed 46
tiny-qwen2-Q4_K_M|--preset tiny-qwen2 --type Q4_K_M --seed 47
tiny-qwen3-f32|--preset tiny-qwen3 --type f32 --seed 51
tiny-qwen3-f16|--preset tiny-qwen3 --type f16 --seed 52
tiny-qwen3-q8_0|--preset tiny-qwen3 --type q8_0 --seed 53
tiny-qwen3-q5_0|--preset tiny-qwen3 --type q5_0 --seed 54
tiny-qwen3-q5_K|--preset tiny-qwen3 --type q5_K --seed 55
tiny-qwen3-Q5_K_M|--preset tiny-qwen3 --type Q5_K_M --seed 56
tiny-gemma2-f32|--preset tiny-gemma2 --type f32 --seed 61
tiny-gemma2-f16|--preset tiny-gemma2 --type f16 --seed 62
tiny-gemma2-q8_0|--preset tiny-gemma2 --type q8_0 --seed 63
tiny-gemma2-Q4_K_M|--preset tiny-gemma2 --type Q4_K_M --seed 64
tiny-gemma-f32|--preset tiny-gemma --type f32 --seed 91
tiny-gemma-f16|--preset tiny-gemma --type f16 --seed 92
tiny-gemma-q8_0|--preset tiny-gemma --type q8_0 --seed 93
tiny-gemma-Q4_K_M|--preset tiny-gemma --type Q4_K_M --seed 94
tiny-gemma3-f32|--preset tiny-gemma3 --type f32 --seed 71
tiny-gemma3-f16|--preset tiny-gemma3 --type f16 --seed 72
tiny-gemma3-q8_0|--preset tiny-gemma3 --type q8_0 --seed 73
tiny-gemma3-Q5_K_M|--preset tiny-gemma3 --type Q5_K_M --seed 74
tiny-gemma3-swa3-f32|--preset tiny-gemma3 --type f32 --seed 75 --swa-pattern 3
tiny-gemma2-46l-f16|--preset tiny-gemma2 --type f16 --seed 65 --n-layer 46
tiny-gemma3-62l-f16|--preset tiny-gemma3 --type f16 --seed 76 --n-layer 62
tiny-gemma3-nowin-f32|--preset tiny-gemma3 --type f32 --seed 77 --sliding-window 0 --final-softcap 10
tiny-gemma2-rope-f32|--preset tiny-gemma2 --type f32 --seed 66 --rope-theta 1000000 --rope-scale 4
tiny-gemma2-defcaps-f32|--preset tiny-gemma2 --type f32 --seed 67 --attn-softcap 0 --final-softcap 0
"

filter="${1:-.}"
[ -x ./hearth ] || make -s hearth
if [ ! -d scripts/reference/node_modules/node-llama-cpp ]; then
  (cd scripts/reference && npm ci --no-audit --no-fund >/dev/null)
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p tests/golden

echo "$GOLDENS" | while IFS='|' read -r name args; do
  [ -n "$name" ] || continue
  [[ "$name" =~ $filter ]] || continue
  # shellcheck disable=SC2086
  ./hearth fixture $args --out "$tmp/$name.gguf" >/dev/null
  node scripts/reference/record.mjs --model "$tmp/$name.gguf" --threads 1 \
    --fixture-cmd "hearth fixture $args" --out "tests/golden/$name.golden.json"
  echo "tests/golden/$name.golden.json" >&2
  rm -f "$tmp/$name.gguf"
done
