"""Arguments of ``vit-tf t2i ...`` (argparse only: building the parser imports nothing heavy).

    vit-tf t2i train     --data DATA [--image-root DIR] --out RUN [--generator maskgit|diffusion]
                         [--format F] [--set key=value ...] [--skip-invalid]
    vit-tf t2i generate  --model RUN --prompt "..." --out out.png [--seeds 4] [--seed S]
                         [--negative-prompt "..."] [--num-steps N] [--guidance-scale G]
    vit-tf t2i eval      (--model RUN | --baseline oracle|retrieval) --out DIR [--per-task N]
                         [--train-data DATA --image-root DIR] [--judge VLM_RUN] [--best-of N]
    vit-tf t2i gate      --model RUN --data DATA/test.json --image-root DIR [--limit N]
    vit-tf t2i export    --model RUN --out DIR [--num-steps N]
"""


def add_t2i_parser(sub):
    t2i = sub.add_parser("t2i", help="text-to-image: train, generate, evaluate, export")
    tsub = t2i.add_subparsers(dest="t2i_command", required=True)

    p = tsub.add_parser("train", help="train a text-to-image model on captioned images")
    p.add_argument("--data", required=True, help="LLaVA JSON (captions and descriptions are "
                   "used), COCO captions, tfds NAME:SPLIT or an image folder")
    p.add_argument("--image-root", default=None, help="image folder of --data")
    p.add_argument("--format", default="llava",
                   help="llava, coco_captions, tfds, imagefolder or sidecar_captions (default llava)")
    p.add_argument("--annotations", default=None, help=argparse_suppress())
    p.add_argument("--tfds-data-dir", default=None, help="tfds data_dir for --format tfds")
    p.add_argument("--out", required=True, help="run folder (a preset when training ends)")
    p.add_argument("--generator", choices=("maskgit", "diffusion"), default=None,
                   help="default: the config's (maskgit)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a vit_tf.t2i.config value, e.g. --set maskgit.steps=500")
    p.add_argument("--skip-invalid", action="store_true")

    p = tsub.add_parser("generate", help="images from a prompt (a grid for several)")
    p.add_argument("--model", required=True, help="run / preset folder or .keras file")
    p.add_argument("--prompt", required=True, action="append", help="repeat for several rows")
    p.add_argument("--negative-prompt", default="", help="steer away from this (default none)")
    p.add_argument("--out", required=True, help="PNG to write")
    p.add_argument("--seeds", type=int, default=1, help="images per prompt (grid columns)")
    p.add_argument("--seed", type=int, default=0, help="seed of the first image")
    p.add_argument("--num-steps", type=int, default=None)
    p.add_argument("--guidance-scale", type=float, default=None)
    p.add_argument("--scale", type=int, default=1, help="upscale the PNG by this factor")
    p.add_argument("--no-xla", action="store_true", help="do not XLA-compile the sampler")

    p = tsub.add_parser("eval", help="the GenEval mirror on the shapes world")
    p.add_argument("--model", default=None, help="run / preset folder or .keras file")
    p.add_argument("--baseline", choices=("oracle", "retrieval"), default=None)
    p.add_argument("--out", required=True, help="folder for metrics.json, results.jsonl, "
                   "report.txt, samples.png")
    p.add_argument("--per-task", type=int, default=50, help="prompts per task")
    p.add_argument("--seed", type=int, default=0, help="prompt draw and sampling seed")
    p.add_argument("--hold-out", default=None, help="colour:shape pairs held out of training "
                   "(default: the model's, else none)")
    p.add_argument("--train-data", default=None, help="the training captions (retrieval; "
                   "'seen' fractions)")
    p.add_argument("--image-root", default=None, help="image folder of --train-data")
    p.add_argument("--judge", default=None, help="a trained shapes-world VLM run folder")
    p.add_argument("--best-of", type=int, default=0, help="with --judge: rerank N samples")
    p.add_argument("--diversity-prompts", type=int, default=16)
    p.add_argument("--diversity-seeds", type=int, default=4)
    p.add_argument("--num-steps", type=int, default=None)
    p.add_argument("--guidance-scale", type=float, default=None)

    p = tsub.add_parser("gate", help="the image tokenizer's gate: reconstructions parse back")
    p.add_argument("--model", required=True)
    p.add_argument("--data", required=True, help="LLaVA JSON of held-out scenes")
    p.add_argument("--image-root", required=True)
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--out", default=None, help="PNG of originals over reconstructions")

    p = tsub.add_parser("export", help="SavedModel: prompt strings -> PNG bytes")
    p.add_argument("--model", required=True)
    p.add_argument("--out", required=True, help="SavedModel folder (must not exist)")
    p.add_argument("--num-steps", type=int, default=None, help="default: the model's")


def argparse_suppress():
    import argparse

    return argparse.SUPPRESS
