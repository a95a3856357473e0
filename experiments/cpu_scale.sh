#!/usr/bin/env bash
# The CPU-scale reproduction behind docs/results.md: every study at the configs'
# default (CPU) scale, then the report tool's tables. Sequential, resumable (a stage
# whose folder holds .done is skipped); about 8 hours on 2 CPU cores.
#
#   bash experiments/cpu_scale.sh [OUT]        # default OUT: logs/cpu_scale
#   make reproduce-cpu                         # the same through make
#   EXTRA="debug=default index=flat evaluation.baselines=[]" \
#       bash experiments/cpu_scale.sh /tmp/smoke   # every stage at debug size (minutes)
#
# Tables go to OUT/tables/<study>/report.{md,csv,tex} (and correlation.md + PNGs), the
# results.json + run.trec.gz of every run to OUT/runs/<stage>/ (experiments/archive_runs.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-logs/cpu_scale}

source experiments/stages.sh

# 1. Tables 1-2: every compressor at budget 32 on NFCorpus and SciFact (12 trainings,
#    one stage each, NFCorpus first, so an interrupted program keeps what finished)
for dataset in nfcorpus scifact; do
  for method in none seqresize memtok hpool agc crisp; do
    stage "beir_${dataset}_${method}" experiment=beir_table "dataset=$dataset" "compressor=$method"
  done
done

NONE_DIR=$(run_dir beir_nfcorpus_none none nfcorpus)
AGC_DIR=$(run_dir beir_nfcorpus_agc agc nfcorpus)
HPOOL_DIR=$(run_dir beir_nfcorpus_hpool hpool nfcorpus)
NONE=$NONE_DIR/checkpoints/last.ckpt
AGC=$AGC_DIR/checkpoints/last.ckpt
HPOOL=$HPOOL_DIR/checkpoints/last.ckpt
POSTHOC=(train=false "init_from=$NONE" task_name=posthoc dataset=nfcorpus)

# 2. Post-hoc methods on the uncompressed NFCorpus model (evaluation only)
stage posthoc_hpool "${POSTHOC[@]}" budget=32 compressor=hpool_posthoc
stage posthoc_static "${POSTHOC[@]}" budget=32 compressor=first_k,idf,attention_prune
stage posthoc_c4x8 "${POSTHOC[@]}" budget=8 compressor=kmeans_posthoc,tail,k_spacing
stage posthoc_r4_kmeans "${POSTHOC[@]}" budget=null compressor=kmeans_posthoc \
  compressor.mode=relative compressor.ratio=4
stage posthoc_r4_tail "${POSTHOC[@]}" budget=null compressor=tail compressor.ratio=4
stage posthoc_r4_spacing "${POSTHOC[@]}" budget=null compressor=k_spacing compressor.spacing=4

# 3. CRISP trained at C4x8 and R4 (C4x32 is in beir_table)
stage crisp_c4x8 experiment=crisp compressor=crisp budget=8
stage crisp_r4 experiment=crisp compressor=crisp budget=null compressor.mode=relative \
  compressor.ratio=4

# 4. Lossless pruning on ColBERT_P: LP on both datasets, norm pruning on NFCorpus
stage lossless_lp_nfcorpus experiment=lossless compressor=lossless_lp dataset=nfcorpus
stage lossless_lp_scifact experiment=lossless compressor=lossless_lp dataset=scifact
stage lossless_norm experiment=lossless compressor=lossless_norm
LOSSLESS_NORM=$OUT/lossless_norm/0/checkpoints/last.ckpt
LOSSLESS_LP=$OUT/lossless_lp_nfcorpus/0/checkpoints/last.ckpt
# the norm model unpruned (threshold 0) and pruned harder; the LP model with the
# paper's SVD-reduced LP (evaluation only)
stage lossless_norm_sweep experiment=lossless compressor=lossless_norm train=false \
  "init_from=$LOSSLESS_NORM" compressor.norm_threshold=0.0,0.3 \
  "checkpoint_overrides=[compressor.norm_threshold]"
stage lossless_lp_svd experiment=lossless compressor=lossless_lp dataset=nfcorpus train=false \
  "init_from=$LOSSLESS_LP" compressor.strategy=lp_svd compressor.svd_threshold=0.7 \
  "checkpoint_overrides=[compressor.strategy]"

# 5. Table 9: AGC ablation (the full model is beir_table's agc)
stage agc_ablation experiment=agc_ablation ablation=no_weight,no_select,no_cluster

# 6. Table 6: budget transfer of the budget-32 AGC and H-Pool models (evaluation only),
#    next to H-Pool applied post hoc to the uncompressed model (the paper's H-Pool rows)
#    and AGC trained at the test budget itself (the reference a transfer is judged by)
stage transfer_agc train=false "init_from=$AGC" task_name=transfer_budget dataset=nfcorpus \
  compressor=agc budget=32 test_budget=5,128
stage transfer_hpool train=false "init_from=$HPOOL" task_name=transfer_budget \
  dataset=nfcorpus compressor=hpool budget=32 test_budget=5,128
stage transfer_hpool_posthoc "${POSTHOC[@]}" budget=5,128 compressor=hpool_posthoc
stage train_budget_agc experiment=beir_table dataset=nfcorpus compressor=agc budget=5,128

# 7. Issue 2's longer and larger NFCorpus configurations of the uncompressed model
stage longer_500 task_name=longer dataset=nfcorpus trainer.max_steps=500
stage longer_dim384 task_name=longer dataset=nfcorpus model.dim=null
stage flat_dim384 train=false "init_from=$OUT/longer_dim384/0/checkpoints/last.ckpt" \
  task_name=longer dataset=nfcorpus model.dim=null index=flat evaluation.baselines=[] \
  evaluation.utilization.enabled=false

# 8. Tables
report() { "$PY" -m colcompress.report --order=none,seqresize,memtok,hpool,agc,crisp "$@"; }
T=$OUT/tables
report "$OUT"/beir_* "$OUT"/lossless_lp_* --metric ndcg@10,recall@10 --out "$T/beir_table"
report "$OUT"/posthoc_* "$OUT"/crisp_* "$OUT"/beir_nfcorpus_* --metric ndcg@10,recall@10 \
  --out "$T/compression_nfcorpus"
report "$OUT"/lossless_* "$NONE_DIR" --metric ndcg@10,recall@100 \
  --out "$T/lossless"
report "$AGC_DIR" "$OUT/agc_ablation" "$NONE_DIR" \
  --metric ndcg@10,recall@10 --out "$T/agc_ablation"
report --budget-columns "$OUT/transfer_agc" "$OUT/transfer_hpool" \
  "$OUT/transfer_hpool_posthoc" "$OUT/posthoc_hpool" "$OUT/train_budget_agc" \
  "$AGC_DIR" "$HPOOL_DIR" "$NONE_DIR" \
  --metric ndcg@10,recall@10 --out "$T/transfer_budget"
# Table 8 / Figures 3-4: utilization of the NFCorpus budget-32 runs
NF_RUNS=()
for method in none seqresize memtok hpool agc crisp; do
  NF_RUNS+=("$(run_dir "beir_nfcorpus_$method" "$method" nfcorpus)")
done
# the correlation is across the budget-32 compressors (same positions), as Table 8
"$PY" -m colcompress.report correlate "${NF_RUNS[@]:1}" \
  --metrics ndcg@10 recall@10 mrr@10 --out "$T/utilization"
"$PY" -m colcompress.report figure "${NF_RUNS[@]}" \
  --out "$T/utilization/utilization_grid_nfcorpus.png"
# Figure 4: the AGC ablation's utilization (runs named by their labels)
ABLATION_RUNS=("$AGC_DIR")
while IFS= read -r -d '' results; do
  ABLATION_RUNS+=("$(dirname "$results")")
done < <(find "$OUT/agc_ablation" -name results.json -print0 | sort -z)
"$PY" -m colcompress.report correlate "${ABLATION_RUNS[@]}" \
  --metrics ndcg@10 recall@10 --out "$T/utilization_agc_ablation"
"$PY" -m colcompress.report figure "${ABLATION_RUNS[@]}" \
  --out "$T/utilization_agc_ablation/utilization_grid.png"
# 9. What the tables were built from, small enough for git (results.json + run.trec.gz
#    per run; copy OUT/runs/* to docs/runs/ to keep them with the tables)
STAGES=()
for done_file in "$OUT"/*/.done; do
  STAGES+=("$(basename "$(dirname "$done_file")")")
done
bash experiments/archive_runs.sh "$OUT" "$OUT/runs" "${STAGES[@]}"
echo "tables in $T, their runs in $OUT/runs"
