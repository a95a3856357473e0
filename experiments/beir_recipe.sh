#!/usr/bin/env bash
# The budget-32 BEIR recipe table of docs/results.md, on NFCorpus and SciFact: per
# collection the uncompressed model (`none`, experiment=beir_table: the recipe that
# scored best on NFCorpus dev), every compressor trained with the recipe from it
# (experiment=beir_recipe: two-stage, distillation from `none`, initialisations) and
# H-Pool post hoc on it; then the table (nDCG@10, Recall@10, % of none, paired t-test
# against none, the paper's % beside it: experiments/published/qin2026_table2.csv);
# the best two methods (H-Pool post hoc and trained) at budgets 5 and 128 beside 32, and
# H-Pool post hoc with budgets proportional to document length at the same index size,
# and AGC with the pair-score distillation.
# Sequential and resumable like cpu_scale.sh; about 2 hours on 2 quiet CPU cores.
#
#   bash experiments/beir_recipe.sh [OUT]        # default OUT: logs/beir_recipe_study
#   EXTRA="debug=default index=flat evaluation.baselines=[]" \
#       bash experiments/beir_recipe.sh /tmp/smoke   # every stage at debug size
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-logs/beir_recipe_study}
DATASETS=${DATASETS:-nfcorpus scifact}

source experiments/stages.sh

stages=()
budget_stages=()
budget_runs=()
for ds in $DATASETS; do
  stage "${ds}_none" experiment=beir_table compressor=none "dataset=$ds"
  NONE_CKPT=$(run_dir "${ds}_none" none "$ds")/checkpoints/last.ckpt
  stage "${ds}_recipe" experiment=beir_recipe "dataset=$ds" "none_ckpt=$NONE_CKPT"
  stage "${ds}_posthoc" experiment=beir_recipe "dataset=$ds" compressor=hpool_posthoc \
    train=false "none_ckpt=$NONE_CKPT"
  stage "${ds}_budgets" experiment=beir_recipe "dataset=$ds" "none_ckpt=$NONE_CKPT" \
    compressor=hpool budget=5,128
  stage "${ds}_posthoc_budgets" experiment=beir_recipe "dataset=$ds" compressor=hpool_posthoc \
    train=false "none_ckpt=$NONE_CKPT" budget=5,128
  # H-Pool post hoc at 32 vectors per document on average, in proportion to each
  # document's tokens: the fixed budget's index size
  stage "${ds}_posthoc_prop" experiment=beir_recipe "dataset=$ds" \
    compressor=hpool_posthoc train=false "none_ckpt=$NONE_CKPT" compressor.budget_mode=proportional \
    label=hpool_posthoc_proportional
  # AGC with the pair-score distillation (the dev table's best AGC)
  stage "${ds}_agc_pair" experiment=beir_recipe "dataset=$ds" "none_ckpt=$NONE_CKPT" compressor=agc \
    training.pair_distillation_weight=1 label=agc_pair@32
  stages+=("${ds}_none" "${ds}_recipe" "${ds}_posthoc")
  budget_stages+=("${ds}_budgets" "${ds}_posthoc_budgets" "${ds}_posthoc_prop"
    "${ds}_agc_pair")
  # the budgets table: none, H-Pool post hoc and trained H-Pool (at 32 from the recipe
  # sweep) beside the budget stages
  budget_runs+=("$OUT/${ds}_none" "$OUT/${ds}_posthoc" "$(run_dir "${ds}_recipe" hpool "$ds")")
done

T=$OUT/tables/beir_recipe
"$PY" -m colcompress.report "${stages[@]/#/$OUT/}" \
  --order=none,hpool_posthoc,seqresize,memtok,hpool,agc,crisp \
  --metric ndcg@10,recall@10 --published experiments/published/qin2026_table2.csv --out "$T"
"$PY" -m colcompress.report --budget-columns "${budget_runs[@]}" "${budget_stages[@]/#/$OUT/}" \
  --order=none,hpool_posthoc,hpool,agc --metric ndcg@10,recall@10 --out "$T" --name budgets
bash experiments/archive_runs.sh "$OUT" "$OUT/runs" "${stages[@]}" "${budget_stages[@]}"
echo "table in $T, its runs in $OUT/runs"
