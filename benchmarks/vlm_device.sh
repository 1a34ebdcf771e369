#!/usr/bin/env bash
# The GPU measurement of benchmarks/vlm.py in one call (issue 12's table), for a machine that has
# torch, transformers, peft and accelerate but not trl, datasets or av: put their wheels (and the
# transformers this repo is tested with) in $WHEELS first. Writes JSON and logs under $OUT.
#   WHEELS=.whl OUT=/tmp/out bash benchmarks/vlm_device.sh
set -o pipefail
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
OUT=${OUT:-/tmp/vlm-bench}; mkdir -p "$OUT"
if ls "${WHEELS:-.whl}"/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site "${WHEELS:-.whl}"/*.whl || exit 1
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)"
timeout "${MAIN_S:-330}" python3 benchmarks/vlm.py --size 2b --window 4 --batches 64,128,256 \
  --sections preprocess,generate,readout,score,breakdown,sft,profile --json "$OUT/vlm_2b.json" 2>&1 \
  | grep -v "Loading weights\|Writing model" | tee "$OUT/vlm_2b.log"
timeout "${STATIC_S:-120}" python3 benchmarks/vlm.py --size 2b --window 4 --batches 128,256 \
  --frames 512 --sections static --json "$OUT/vlm_2b_static.json" 2>&1 \
  | grep -v "Loading weights\|Writing model" | tail -40 | tee "$OUT/vlm_2b_static.log"
