#!/usr/bin/env bash
# Re-measure every figure quoted in README.md and docs/ (after retraining the bundled model).
# Timing benchmarks first, on a quiet machine; the long explanation-evidence run last.
#   DATA=../shared/datasets/brain-tumor-mri bash benchmarks/run_all.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
DATA=${DATA:-../shared/datasets/brain-tumor-mri}
MASKS=${MASKS:-../shared/datasets/brain-tumor-mri-masks}
BASELINE=${BASELINE:-runs/paper-cnn/bundle}
export DATA

step() { printf '\n=== %s\n' "$*"; }

step "audit speed";            $PY benchmarks/audit_speed.py "$DATA" --out benchmarks/results/audit_speed.json
step "cache speed";            $PY benchmarks/cache_speed.py --data "$DATA"
step "accuracy (bundled vs baseline)"
bundles=(src/braintumor/weights); [ -d "$BASELINE" ] && bundles+=("$BASELINE")
$PY benchmarks/accuracy.py --data "$DATA" "${bundles[@]}"
step "training throughput";    $PY benchmarks/train_throughput.py --data "$DATA"
step "training-step variants"; $PY benchmarks/step_variants.py
step "augmentation speed";     $PY benchmarks/augment_speed.py
step "evaluate speed";         $PY benchmarks/evaluate_speed.py --data "$DATA"
step "prediction latency";     $PY benchmarks/predict_latency.py --data "$DATA"
step "explanation speed";      OMP_NUM_THREADS=1 $PY benchmarks/explain_speed.py --data "$DATA"
step "serve load (predict)";   $PY benchmarks/serve_load.py --data "$DATA" --route predict
step "serve load (explain)";   $PY benchmarks/serve_load.py --data "$DATA" --route explain \
                                   --out benchmarks/results/serve_load_explain.json
step "flip averaging";         $PY benchmarks/flip_tta.py --data "$DATA"
step "explanation evidence";   $PY benchmarks/explain_evidence.py --data "$DATA" --masks "$MASKS"
