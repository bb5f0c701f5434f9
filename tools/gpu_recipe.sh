#!/usr/bin/env bash
# The SmolLM2 + EfficientNet-Lite0 recipe (issue 14) at full data, mixed_bfloat16, on one GPU.
# Prepared for a lent GPU machine (the `device` tool); nothing depends on it and it has not been
# run. One command, from the repository root after the README's install command:
#
#     bash tools/gpu_recipe.sh [DATA_DIR] [RUNS_DIR]
#
# Same code as the 2-core runs (vit_tf/experiments/smollm2_*.py); differences: all 4,000 easy-VQA
# training images and 1,000 test images, 2,000 shapes-world scenes, no per-category cap in
# stage 2, whole epochs instead of a wall-clock budget, batch 64, bfloat16 compute
# (train.precision=mixed_bfloat16: float32 weights, logits and loss).
set -euo pipefail
cd "$(dirname "$0")/.."
D=${1:-data/real_full}; R=${2:-runs/gpu}
P="--set train.precision=mixed_bfloat16 --set train.jit_compile=true --set data.batch_size=64"
python -c "import tensorflow as tf; g = tf.config.list_physical_devices('GPU'); print('GPUs:', g); assert g, 'no GPU visible'"
bash tools/install_real_images.sh
vit-tf pretrained convert efficientnet_lite0 smollm2_135m_instruct
[ -f "$D/train.json" ] || vit-tf data real-images --out "$D" --vqa-train-images 4000 \
    --vqa-test-images 1000 --shapes-scenes 2000
python -m vit_tf.experiments.smollm2_vision features --data "$D"
# stage 1: ~2 epochs over the captions (1,896 + 1,000 extra easy-VQA captions at full data)
python -m vit_tf.experiments.smollm2_stage1 --data "$D" --out "$R/s1" $P \
    --set train.steps_per_epoch=100 --set train.learning_rate=2e-3
# stage 2: ~2 epochs over the whole instruction mix (~50k examples)
python -m vit_tf.experiments.smollm2_stage2_lora --data "$D" --init "$R/s1" --out "$R/s2_lora" \
    $P --max-per-category 0 --set train.steps_per_epoch=1500
python -m vit_tf.experiments.smollm2_stage2_full --data "$D" --init "$R/s1" --out "$R/s2_full" \
    $P --max-per-category 0 --set train.steps_per_epoch=1500
python -m vit_tf.experiments.smollm2_visual_prompting --data "$D" --out "$R/vp" --vqa-limit 0
for run in s1 s2_lora s2_full; do
  python -m vit_tf.experiments.smollm2_vision eval --data "$D" --model "$R/$run" --vqa-limit 0
done
vit-tf compare "$R/vp" "$R/s1" "$R/s2_lora" "$R/s2_full" | tee "$R/compare.txt"
