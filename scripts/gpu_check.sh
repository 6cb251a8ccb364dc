#!/usr/bin/env bash
# The GPU targets of issue 18, measured in one go on one GPU (sized for ~8 minutes of an H200, the
# machine's start included). Run from the repository root:
#
#   bash scripts/gpu_check.sh [OUT_DIR]          # OUT_DIR defaults to $OUT, else bench_out/gpu_check
#
# On the lent device machine (no network; torch, lightning, triton are there): carry the wheels of the
# packages it lacks in .whl/ (see recipes/gpu_check.md); this script installs them into /tmp/site.
#
# What it measures, in priority order (each step has its own time limit; a step that fails or times out
# does not stop the later ones):
#   1. training throughput of the speech recipe with the gpu preset (compiled, frame-budget batches, bf16):
#      steady-state mel frames/s, items/s, achieved TFLOP/s, MFU, GPU memory peak   (target >= 300,000)
#   2. text-to-wav at 10 NFE: RTF at batch 1 (target <= 0.005) and audio s per wall s for 32 sentences
#   3. a 2-process DDP run on the one GPU (gloo): fit, then validation loss equal to one process
#   4. a torch.profiler trace of the gpu preset (trace.json, top_ops.txt, profile.json)
#   5. the same throughput without torch.compile (what compile buys)
set -u
OUT_DIR=${1:-${OUT:-bench_out/gpu_check}}
mkdir -p "$OUT_DIR"
export PYTHONUNBUFFERED=1 TORTOISE_LITE_CACHE=${TORTOISE_LITE_CACHE:-/tmp/tl_cache} HF_HUB_OFFLINE=1
PY=${PYTHON:-python3}
RUN=/tmp/tl_gpu_run
LOG="$OUT_DIR/gpu_check.log"
t_start=$(date +%s)

step() {  # step NAME SECONDS CMD...: run with a time limit, log everything, never abort the script
  local name=$1 limit=$2
  shift 2
  echo "=== [$(($(date +%s) - t_start)) s] $name (limit ${limit} s): $*" | tee -a "$LOG"
  timeout --signal=INT --kill-after=15 "$limit" "$@" 2>&1 | tee -a "$LOG" | grep -v "^\s*$" | tail -n 40
  echo "=== $name: exit ${PIPESTATUS[0]}" | tee -a "$LOG"
}

if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site:${PYTHONPATH:-}
fi
export PYTHONPATH=$PWD:${PYTHONPATH:-}
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  $PY -c "import torch, lightning; print('torch', torch.__version__, 'lightning', lightning.__version__, torch.cuda.get_device_name(0))"
} 2>&1 | tee -a "$LOG"

# 1. training throughput, gpu preset (keeps its run: the checkpoint for 2 and 3)
step train_throughput 240 $PY -m tortoise_lite.bench profile --no-trace --warmup 30 --steps 80 \
  --run-dir "$RUN" --out "$OUT_DIR/train" trainer=gpu checkpoint.every_n_train_steps=100000
CKPT=$RUN/checkpoints/last.ckpt

# 2. text to wav at 10 NFE (eSpeak's durations of the texts: realistic lengths for a short-trained model)
step rtf_batch1 60 $PY -m tortoise_lite.bench synthesize --ckpt "$CKPT" --device cuda --reference-durations \
  --nfe 10 --n-texts 4 --batch-size 1 --repeats 3 --out "$OUT_DIR/synth_b1"
step rtf_batch32 60 $PY -m tortoise_lite.bench synthesize --ckpt "$CKPT" --device cuda --reference-durations \
  --nfe 10 --n-texts 32 --batch-size 32 --repeats 2 --out "$OUT_DIR/synth_b32"

# 3. DDP: two processes on the one GPU (NCCL refuses two ranks on one device: gloo), launched as two
#    "nodes" of one device each; then the validation loss of 1 and of 2 processes on the same checkpoint.
ddp() {  # ddp OUTPUT_DIR OVERRIDES...
  local out=$1
  shift
  for r in 0 1; do
    MASTER_ADDR=127.0.0.1 MASTER_PORT=29533 WORLD_SIZE=2 NODE_RANK=$r LOCAL_RANK=0 \
      $PY -m tortoise_lite.train +recipe=speech trainer=ddp trainer.devices=1 trainer.num_nodes=2 \
      trainer.strategy.process_group_backend=gloo compile.enabled=false rich_progress=false \
      samples.enabled=false logger=csv output_dir="$out" "$@" > "$out.rank$r.log" 2>&1 &
  done
  wait
  cat "$out.rank0.log"
  tail -n 5 "$out.rank1.log"
}
export -f ddp
export PY
step ddp_fit 120 bash -c "ddp /tmp/tl_ddp_fit trainer.max_steps=20 trainer.val_check_interval=20 record_items=true"
step val_1proc 60 bash -c "$PY -m tortoise_lite.train +recipe=speech trainer=gpu compile.enabled=false \
  mode=validate ckpt_path=$CKPT output_dir=/tmp/tl_val1 rich_progress=false samples.enabled=false logger=csv \
  > /tmp/tl_val1.rank0.log 2>&1; cat /tmp/tl_val1.rank0.log"
step val_2proc 90 bash -c "ddp /tmp/tl_val2 mode=validate ckpt_path=$CKPT"
$PY - <<'EOF' 2>&1 | tee -a "$LOG"
import re
def val(path):
    try:
        m = re.search(r"val/loss\s*[:│]\s*([0-9.eE+-]+)", open(path).read())
    except OSError:
        return None
    return float(m.group(1)) if m else None
a, b = val("/tmp/tl_val1.rank0.log"), val("/tmp/tl_val2.rank0.log")
ok = a is not None and b is not None and abs(a - b) <= 1e-3 * max(abs(a), 1e-9)
print(f"validation loss: 1 process {a}, 2 DDP processes {b}: {'EQUAL' if ok else 'DIFFER or missing'}")
EOF
for r in 0 1; do
  [ -f /tmp/tl_ddp_fit/items_rank$r.txt ] && echo "rank $r trained on $(wc -w < /tmp/tl_ddp_fit/items_rank$r.txt) item slots" | tee -a "$LOG"
done

# 4. where the time goes with the gpu preset (compiled graphs come from the inductor cache of step 1)
step profile_trace 120 $PY -m tortoise_lite.bench profile --warmup 30 --steps 6 --out "$OUT_DIR/profile" trainer=gpu
[ -f "$OUT_DIR/profile/trace.json" ] && gzip -f "$OUT_DIR/profile/trace.json"  # (16 MB per file comes back)

# 5. without torch.compile
step train_eager 90 $PY -m tortoise_lite.bench profile --no-trace --warmup 8 --steps 30 \
  --out "$OUT_DIR/train_eager" trainer=gpu compile.enabled=false

echo "=== done in $(($(date +%s) - t_start)) s; figures in $OUT_DIR (train/throughput.json, synth_b1/synthesize.json, synth_b32/synthesize.json, profile/)" | tee -a "$LOG"
