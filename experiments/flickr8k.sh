#!/usr/bin/env bash
# The Flickr8k-1k text-to-image study of docs/results.md: the uncompressed image
# ColBERT, AGC trained at budgets 5 and 32, H-Pool post hoc on the uncompressed model at
# budgets 5 and 32, then the table (R@1, R@10, nDCG@10 against a random ranking, patch
# tokens per image, compression ratio) and the matching strength over the patch grid.
# Sequential and resumable like cpu_scale.sh; about 40 minutes on 2 quiet CPU cores.
#
#   bash experiments/flickr8k.sh [OUT]        # default OUT: logs/flickr8k_study
#   EXTRA="debug=default model=vit_tiny index=flat evaluation.baselines=[random]" \
#       bash experiments/flickr8k.sh /tmp/smoke   # every stage at debug size (a minute)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-logs/flickr8k_study}

source experiments/stages.sh

stage flickr8k_none experiment=flickr8k compressor=none budget=32
NONE_DIR=$(run_dir flickr8k_none none flickr8k_1k)
stage flickr8k_agc experiment=flickr8k compressor=agc
stage flickr8k_posthoc experiment=flickr8k compressor=hpool_posthoc train=false \
  "init_from=$NONE_DIR/checkpoints/last.ckpt"

T=$OUT/tables/flickr8k
"$PY" -m colcompress.report "$OUT"/flickr8k_* --order=none,hpool_posthoc,agc \
  --metric recall@1,recall@10,ndcg@10 --out "$T"
"$PY" -m colcompress.report patch-grid "$NONE_DIR" --out "$T/patch_grid.png"
bash experiments/archive_runs.sh "$OUT" "$OUT/runs" flickr8k_none flickr8k_agc flickr8k_posthoc
echo "table in $T, its runs in $OUT/runs"
