#!/usr/bin/env bash
# For a session lent a GPU: resume the committed CPU training run there, bring its checkpoint
# back, then measure the whole pipeline's throughput on the GPU. Nothing depends on it.
#
#   bash scripts/gpu_session.sh prepare        # here, once: wheels the device image lacks -> .whl/
#   bash scripts/gpu_session.sh train [MIN]    # there (device `run`, carry [".whl"]): resume
#                                              # $RUN with $CONFIG (default
#                                              # training_runs/cpu_2d_context_repeat and
#                                              # configs/cpu_2d_context_repeat.json, the 2-D window
#                                              # model with v1's repeated finest scale, which
#                                              # finished its 24,000 steps 2026-12-07: set RUN and
#                                              # CONFIG to a run in progress; a finished one is
#                                              # said and skipped) for MIN minutes (default 7), its
#                                              # train_state.pt and log.csv -> $OUT
#   bash scripts/gpu_session.sh speed          # there: benchmarks/predict_speed.py on cuda, float32
#                                              # and bfloat16, 256x256 and 160x160 -> $OUT/speed.txt
#   bash scripts/gpu_session.sh bring-back DIR # here: copy the returned checkpoint and log into
#                                              # $RUN (then commit them)
#
# The run resumes exactly where the CPU left it (same config, same step count); on the CPU it
# continues with: var-emitter train --config configs/cpu_2d_context_repeat.json \
#   --out training_runs/cpu_2d_context_repeat --resume
set -euo pipefail
RUN=${RUN:-training_runs/cpu_2d_context_repeat}
CONFIG=${CONFIG:-configs/cpu_2d_context_repeat.json}
WHEELS="dask==2026.8.0 distributed==2026.8.0 zarr==3.1.6 numcodecs==0.16.6 platformdirs==4.14.9 donfig==0.8.1.post1
google-crc32c==1.9.0 partd==1.4.2 locket==1.0.0 threadpoolctl==3.8.0 numba==0.68.1 llvmlite==0.50.0"

steps_left() {  # the steps $CONFIG asks for that $RUN has not done (all of them where it has no log yet)
  python3 - "$CONFIG" "$RUN/log.csv" <<'PY'
import sys
from pathlib import Path
from napari_var_emitter.train.config import TrainConfig
config = TrainConfig.from_file(sys.argv[1])
total = config.training.steps + (config.training.tokenizer_steps if config.model.var_prior else 0)
log = Path(sys.argv[2])
rows = log.read_text().split()[1:] if log.exists() else []
print(total - (int(rows[-1].split(",")[0]) + 1 if rows else 0))
PY
}

device_env() {
  if ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site:src
  else
    export PYTHONPATH=src
  fi
  export PYTHONUNBUFFERED=1
  python3 -c "import torch; assert torch.cuda.is_available(), 'no GPU'; print(torch.cuda.get_device_name())"
}

case "${1:-}" in
  prepare)
    grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
    # shellcheck disable=SC2086
    python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
      --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
      -d .whl $WHEELS
    ;;
  train)
    device_env
    minutes=${2:-7}
    left=$(steps_left)  # a config or log it cannot read stops the script here, said
    if [ "$left" -le 0 ]; then  # nothing to resume: no training started on the device
      echo "$RUN has finished its steps; set RUN and CONFIG to a run in progress" | tee "$OUT/train.txt"
      exit 0
    fi
    python3 -m napari_var_emitter train --config "$CONFIG" --out "$RUN" --resume --device cuda --workers 14 \
      --minutes "$minutes" 2>&1 | tee "$OUT/train.txt"
    cp "$RUN/train_state.pt" "$RUN/log.csv" "$OUT/"
    [ -f "$RUN/model.safetensors" ] && cp "$RUN/model.safetensors" "$RUN/model.json" "$OUT/" || true
    nvidia-smi --query-gpu=name,memory.used --format=csv >> "$OUT/train.txt" || true
    ;;
  speed)
    device_env
    for amp in "" --amp; do
      (cd benchmarks && python3 predict_speed.py --device cuda --batch-size 64 --frames 400 --sizes 256 160 $amp) \
        2>&1 | tee -a "$OUT/speed.txt"
    done
    ;;
  bring-back)
    src=${2:?the folder holding the files the device run brought back}
    cp "$src/train_state.pt" "$src/log.csv" "$RUN/"
    [ -f "$src/model.safetensors" ] && cp "$src/model.safetensors" "$src/model.json" "$RUN/" || true
    tail -1 "$RUN/log.csv" | cut -d, -f1 | xargs -I{} echo "$RUN now at step {}"
    ;;
  *)
    sed -n '2,/^set -euo/p' "$0" | sed '$d'  # the header: how to use it
    exit 2
    ;;
esac
