#!/usr/bin/env bash
# The GPU measurement of benchmarks/vlm.py in one call (issue 12), for a machine that has torch,
# transformers, peft and accelerate but not trl, datasets or av: put their wheels (and the
# transformers this repo is tested with) in $WHEELS first, but not huggingface_hub: the
# machine's 1.x serves transformers 5.24, a carried 2.x needs httpx2, which is not there.
# Writes JSON and logs under $OUT.
#   WHEELS=.whl OUT=/tmp/out bash benchmarks/vlm_device.sh          # GPU, at most 9 minutes
#   SIZE=tiny FRAMES=16 BATCHES=8 TOKENS=6 SFT_STEPS=3 OUT=/tmp/out bash benchmarks/vlm_device.sh
# (the second line: the same runs on the CPU with the tiny model, in about a minute).
# Run 1 (RUN1_S): whole answers and the digit readout with the dynamic and the bucketed static
# cache, each with 2 and 4 encoding workers; one decoding step and score_dataset end to end with
# either cache (whole answers forced to a fixed one, and reasoning reuse; a static score's
# first, compiling call is timed apart).
# Run 2 (RUN2_S): the per-batch breakdown of a readout batch, the timeline of a readout call
# (device busy vs wall-clock, kernels by kind, the host's stages; vlm_sft.trace.json.gz), then
# LoRA SFT at each batch size of SFT_BATCHES (8 is the setting; 16 shows what a larger
# batch buys).
set -o pipefail
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
OUT=${OUT:-/tmp/vlm-bench}; mkdir -p "$OUT"
SIZE=${SIZE:-2b}; FRAMES=${FRAMES:-512}; BATCHES=${BATCHES:-256}; TOKENS=${TOKENS:-40}
if ls "${WHEELS:-.whl}"/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site "${WHEELS:-.whl}"/*.whl || exit 1
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH}
PY=${PY:-python3}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null \
  || echo "no nvidia-smi: CPU run"
$PY -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)"
bench() {  # name timeout args...
  local name=$1 limit=$2; shift 2
  timeout "$limit" $PY benchmarks/vlm.py --size "$SIZE" --window 4 --frames "$FRAMES" \
    --tokens "$TOKENS" --json "$OUT/$name.json" "$@" 2>&1 \
    | grep -v "Loading weights\|Writing model" | tee "$OUT/$name.log"
}
# TORCH_LOGS=recompiles: the log names every guard that recompiled the decoding step
TORCH_LOGS=${TORCH_LOGS-recompiles} bench vlm_static "${RUN1_S:-330}" --batches "$BATCHES" --workers 2,4 \
  --sections generate,readout,static --score-runs fixed,reuse
bench vlm_sft "${RUN2_S:-200}" --batches "$BATCHES" --sections breakdown,timeline,sft \
  --sft-batch "${SFT_BATCHES:-8,16}" ${SFT_STEPS:+--sft-steps $SFT_STEPS}
