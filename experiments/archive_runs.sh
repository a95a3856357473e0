#!/usr/bin/env bash
# Keep what the tables are built from: for every finished run below OUT/STAGE, its
# results.json (metrics, index sizes, utilization, the resolved config) and its ranking
# gzipped (run.trec.gz, and <collection>/run.trec.gz of a run evaluated on several
# collections; for the report's significance tests), in DEST/STAGE/<job>.
# Checkpoints and indexes are not kept. The report and the utilization tools read the
# copies as they read run directories:
#
#   bash experiments/archive_runs.sh logs/cpu_scale docs/runs beir_scifact_none beir_scifact_agc
#   python -m colcompress.report docs/runs/beir_scifact_* --metric ndcg@10
set -euo pipefail
if (($# < 3)); then
  echo "usage: $0 OUT DEST STAGE..." >&2
  exit 2
fi
OUT=$1 DEST=$2
shift 2
for stage in "$@"; do
  [[ -d $OUT/$stage ]] || { echo "$OUT/$stage: no such stage directory" >&2; exit 1; }
  found=0
  while IFS= read -r -d '' results; do
    run_dir=$(dirname "$results")
    target=$DEST/${run_dir#"$OUT"/}
    mkdir -p "$target"
    cp "$results" "$target/results.json.tmp" && mv "$target/results.json.tmp" "$target/results.json"
    # the ranking, and each collection's ranking of a run evaluated on several
    while IFS= read -r -d '' trec; do
      rel=${trec#"$run_dir"/}
      mkdir -p "$(dirname "$target/$rel")"
      gzip -9 -n -c "$trec" > "$target/$rel.gz.tmp"
      mv "$target/$rel.gz.tmp" "$target/$rel.gz"
    done < <(find "$run_dir" -maxdepth 2 -name run.trec -print0)
    found=$((found + 1))
  done < <(find "$OUT/$stage" -name results.json -print0)
  echo "$stage: $found run(s) -> $DEST/$stage"
done
