# Shared by the study scripts (sourced after OUT is set): the interpreter, offline
# logging, the output folder; run a stage once, find a finished run.
PY=${PY:-.venv/bin/python}
export WANDB_MODE=${WANDB_MODE:-offline} HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1}
mkdir -p "$OUT"

# EXTRA: overrides appended to every job (word-split on purpose)
# shellcheck disable=SC2086
colcompress() { "$PY" -m colcompress.run "$@" ${EXTRA:-}; }

# stage NAME ARGS...: one multirun into OUT/NAME, skipped once complete
stage() {
  local name=$1
  shift
  if [[ -f $OUT/$name/.done ]]; then
    echo "== $name: done, skipped"
    return
  fi
  echo "== $name: $*"
  colcompress -m "$@" "hydra.sweep.dir=$OUT/$name"
  touch "$OUT/$name/.done"
}

# run_dir STUDY METHOD DATASET: the finished run of METHOD on DATASET below OUT/STUDY
run_dir() {
  "$PY" - "$OUT/$1" "$2" "$3" <<'PYTHON'
import sys
from colcompress.analysis.records import find_runs
root, method, dataset = sys.argv[1:]
runs = [r for r in find_runs([root])[0] if (r.method, r.dataset) == (method, dataset)]
if not runs:
    sys.exit(f"no finished {method} run on {dataset} under {root}")
print(runs[0].run_dir)
PYTHON
}
