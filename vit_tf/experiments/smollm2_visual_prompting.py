"""Visual prompting, the zero-training baseline: EfficientNet-Lite0's top-3 ImageNet labels
written into SmolLM2-135M-Instruct's prompt (``vit_tf.inference.visual_prompting``), scored by
the same evaluation as the trained recipes.

Command:

    python -m vit_tf.experiments.smollm2_visual_prompting --data data/real --out runs/vp

Result reached (``--no-xla``, 2 cores, under the CPU lock, load 2.3): held-out emoji captions
CIDEr-D 0.038, ROUGE-L 15.1, names the object 5.5%; scikit-image photos CIDEr-D 0.020, names
the object 11.8% (the best column: "a tabby cat" for Chelsea); easy-VQA 0.0% exact of 120
questions (it answers in sentences). Captions 203 s, easy-VQA 184 s; the retention step was cut
by a 400 s timeout (its LM is the original, so it is 100% by construction). Table:
vit_tf/experiments/README.md, "SmolLM2 learns to see".
"""

import argparse
import os


def main(argv=None):
    from vit_tf.experiments.smollm2_vision import evaluate_all
    from vit_tf.inference.visual_prompting import VisualPromptingTask

    p = argparse.ArgumentParser(prog="python -m vit_tf.experiments.smollm2_visual_prompting")
    p.add_argument("--data", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--top-k", type=int, default=3)
    p.add_argument("--vqa-limit", type=int, default=120)
    p.add_argument("--no-xla", action="store_true", help="generate without XLA compilation")
    args = p.parse_args(argv)
    task = VisualPromptingTask.from_pretrained(top_k=args.top_k)
    os.makedirs(args.out, exist_ok=True)
    evaluate_all(task, args.data, args.out, vqa_limit=args.vqa_limit, jit_compile=not args.no_xla,
                 model_info={"run": os.path.abspath(args.out), "file": "visual prompting: "
                             "efficientnet_lite0 top-k + smollm2_135m_instruct", "sha256": None})


if __name__ == "__main__":
    main()
