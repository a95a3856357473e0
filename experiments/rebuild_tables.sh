#!/usr/bin/env bash
# Rebuild the tables and figures of docs/results.md from the runs archived in docs/runs
# (results.json + run.trec.gz); `git diff --exit-code docs/tables docs/figures` then
# shows that they are reproduced byte for byte.
#
#   bash experiments/rebuild_tables.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
report() { "$PY" -m colcompress.report "$@" >/dev/null; }
R=docs/runs
T=docs/tables

ORDER=--order=none,seqresize,memtok,hpool,agc,crisp  # the paper's row order

report $R/beir_nfcorpus_* $R/beir_scifact_* $R/lossless_lp_* $ORDER \
  --metric ndcg@10,recall@10 --out $T/beir_table
report $R/beir_scifact_* $R/lossless_lp_scifact $ORDER --metric ndcg@10,recall@10 \
  --out $T/beir_scifact
report $R/beir_nfcorpus_agc $R/agc_ablation $R/beir_nfcorpus_none $ORDER \
  --metric ndcg@10,recall@10 --out $T/agc_ablation
report $R/beir_nfcorpus_agc $R/agc_ablation $R/beir_nfcorpus_none $ORDER \
  --metric ndcg@10 --baseline agc@32 --out $T/agc_ablation --name vs_agc
report $R/cross_collection $R/cross_collection_distilled --metric ndcg@10,recall@10 \
  --baseline "multivector (ref)" --out $T/cross_collection
report $R/flickr8k_* --order=none,hpool_posthoc,agc --metric recall@1,recall@10,ndcg@10 \
  --out $T/flickr8k
"$PY" -m colcompress.report patch-grid $R/flickr8k_none/0 \
  --out docs/figures/flickr8k_patch_grid.png >/dev/null
TRANSFER=($R/transfer_{agc,hpool,hpool_posthoc} $R/posthoc_hpool $R/train_budget_agc
  $R/beir_nfcorpus_{agc,hpool,none})
report --budget-columns "${TRANSFER[@]}" $ORDER --metric ndcg@10,recall@10 --out $T/transfer_budget
report --budget-columns "${TRANSFER[@]}" $ORDER --metric ndcg@10,recall@10 --out $T/transfer_budget \
  --baseline hpool_posthoc --name vs_hpool_posthoc
report --budget-columns "${TRANSFER[@]}" $ORDER --metric ndcg@10,recall@10 --out $T/transfer_budget \
  --baseline "hpool (train 32)" --name vs_hpool_trained
ABLATION=($R/beir_nfcorpus_agc/0 $R/agc_ablation/{0,1,2})
"$PY" -m colcompress.report figure "${ABLATION[@]}" \
  --out docs/figures/utilization_agc_ablation.png 2>/dev/null
"$PY" -m colcompress.report correlate "${ABLATION[@]}" \
  --metrics ndcg@10 recall@10 --out $T/utilization_agc_ablation >/dev/null 2>&1
RECIPE=($R/recipe_{nfcorpus,scifact}_{none,recipe,posthoc})
report "${RECIPE[@]}" --order=none,hpool_posthoc,seqresize,memtok,hpool,agc,crisp \
  --metric ndcg@10,recall@10 --published experiments/published/qin2026_table2.csv \
  --out $T/beir_recipe
report --budget-columns $R/recipe_budgets --order=none,hpool_posthoc,hpool,agc \
  --metric ndcg@10,recall@10 --out $T/beir_recipe --name budgets
report $R/recipe_dev --metric ndcg@10,recall@10 --out $T/recipe_dev
report $R/recipe_dev --metric ndcg@10,recall@10 --baseline agc_init_normal --out $T/recipe_dev \
  --name vs_agc
