#!/usr/bin/env bash
# The NFCorpus dev tuning table of the budget-32 recipe (docs/results.md, "What was
# tried, on NFCorpus dev"): one change at a time against experiment=beir_recipe, from
# the same uncompressed model, scored on the dev split with exact search. SciFact has
# no dev split, so every recipe choice is made here. Sequential and resumable like
# beir_recipe.sh; about 4.7 hours on 2 quiet CPU cores.
#
#   NONE=<OUT of beir_recipe.sh>/nfcorpus_none/0/checkpoints/last.ckpt \
#       bash experiments/recipe_dev.sh [OUT]      # default OUT: logs/recipe_dev
#   EXTRA="debug=default" bash experiments/recipe_dev.sh /tmp/smoke   # at debug size
#
# Without NONE the uncompressed model is trained first (experiment=beir_table).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-logs/recipe_dev}

source experiments/stages.sh

if [[ -z ${NONE:-} ]]; then
  stage nfcorpus_none experiment=beir_table compressor=none dataset=nfcorpus
  NONE=$(run_dir nfcorpus_none none nfcorpus)/checkpoints/last.ckpt
fi
DEV=(dataset=nfcorpus dataset.eval_split=dev index=flat evaluation.baselines=[]
  evaluation.utilization.enabled=false)
RECIPE=(experiment=beir_recipe "none_ckpt=$NONE" "${DEV[@]}")

# dev LABEL OVERRIDES...: one run labelled LABEL in OUT/LABEL
labels=()
dev() {
  local label=$1
  shift
  stage "$label" "$@" "label=$label"
  labels+=("$label")
}

dev none compressor=none train=false "init_from=$NONE" "${DEV[@]}"
dev none_distill_zs experiment=beir_table compressor=none training.teacher_zero_shot=true \
  training.distillation_weight=1 "${DEV[@]}"
dev memtok_recipe "${RECIPE[@]}" compressor=memtok recipe.init.memtok=backbone
dev memtok_init_normal "${RECIPE[@]}" compressor=memtok
dev memtok_steps340 "${RECIPE[@]}" compressor=memtok trainer.max_steps=340
dev memtok_steps680 "${RECIPE[@]}" compressor=memtok trainer.max_steps=680
dev memtok_steps85 "${RECIPE[@]}" compressor=memtok trainer.max_steps=85
dev memtok_doc300 "${RECIPE[@]}" compressor=memtok training.doc_length=300
dev memtok_clr1e-3 "${RECIPE[@]}" compressor=memtok recipe.init.memtok=backbone \
  training.compressor_lr=1e-3
dev seqresize_recipe "${RECIPE[@]}" compressor=seqresize
dev seqresize_steps340 "${RECIPE[@]}" compressor=seqresize trainer.max_steps=340
dev seqresize_init_random "${RECIPE[@]}" compressor=seqresize recipe.init.seqresize=random
dev agc_recipe "${RECIPE[@]}" compressor=agc recipe.init.agc=backbone
dev agc_init_normal "${RECIPE[@]}" compressor=agc
dev agc_steps340 "${RECIPE[@]}" compressor=agc trainer.max_steps=340
dev agc_freeze0 "${RECIPE[@]}" compressor=agc training.freeze_encoder_steps=0
dev agc_nokl "${RECIPE[@]}" compressor=agc training.distillation_weight=0
dev agc_pair "${RECIPE[@]}" compressor=agc training.pair_distillation_weight=1
dev agc_prop "${RECIPE[@]}" compressor=agc compressor.budget_mode=proportional
dev hpool_posthoc "${RECIPE[@]}" compressor=hpool_posthoc train=false
dev hpool_posthoc_protect0 "${RECIPE[@]}" compressor=hpool_posthoc train=false \
  compressor.protected_tokens=0
dev hpool_posthoc_prop "${RECIPE[@]}" compressor=hpool_posthoc train=false \
  compressor.budget_mode=proportional
dev hpool_posthoc_hidden "${RECIPE[@]}" compressor=hpool_posthoc train=false \
  compressor.space=hidden

T=$OUT/tables/recipe_dev
"$PY" -m colcompress.report "${labels[@]/#/$OUT/}" --metric ndcg@10,recall@10 --out "$T"
"$PY" -m colcompress.report "${labels[@]/#/$OUT/}" --metric ndcg@10,recall@10 \
  --baseline agc_init_normal --out "$T" --name vs_agc
bash experiments/archive_runs.sh "$OUT" "$OUT/runs" "${labels[@]}"
echo "table in $T, its runs in $OUT/runs"
