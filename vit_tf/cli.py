"""``vit-tf``: one console entry point with subcommands.

    vit-tf data shapes    --out DIR --train N --test M --seed S
    vit-tf data validate  DATA --image-root DIR
    vit-tf data inspect   DATA --image-root DIR [--model RUN] [--limit N]
    vit-tf data real-images --out DIR [--vqa-train-images N] [--shapes-scenes N]
    vit-tf data shard     --data DATA --image-root DIR --out DIR --shards N [--format F]
    vit-tf train          --data DATA --image-root DIR --out RUN [--experiment NAME] [--set k=v ...]
    vit-tf generate       --model RUN --image IMG --prompt "..."
    vit-tf chat           --model RUN --image IMG
    vit-tf explain        --model RUN --image IMG --prompt "..." --out PNG
    vit-tf export         --model RUN --out DIR
    vit-tf eval           --model RUN (--benchmark shapes|pope | --data FILE [--format F]) --image-root DIR
    vit-tf compare        RUN_A RUN_B ...
    vit-tf quickstart     [--out DIR]
    vit-tf plan           [--experiment NAME] [--set k=v ...] [--text-length N] [--calibrate]
    vit-tf pretrained     list | convert [NAME ...]

Bad input ends with ``error: ...`` naming the file, record id and field, and exit status 2
(set VIT_TF_DEBUG=1 for the traceback).
"""

import argparse
import os
import sys

QUICKSTART_TRAIN_QUESTIONS = "position=4,attribute=2,existence=3"
"""The quickstart's training mix (``vit-tf data shapes --train-questions``): up to 4 position,
2 attribute and 3 existence questions per training scene, each about another subject. Binding
a named object (its side, its colour, its size) is learned from these far faster than from
one question per family and scene; see vit_tf/experiments/README.md, "Fifth round". The test split
always has one question per family."""

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _add_train_args(p):
    p.add_argument("--experiment", default="default",
                   help="vit_tf/experiments/<NAME>.py (default: default)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set train.epochs=3 (repeatable)")


def add_decoding_args(p):
    """Decoding flags; each overrides the run's ``generate.*`` config when given."""
    p.add_argument("--strategy", choices=("greedy", "beam", "top_k", "top_p"), default=None)
    p.add_argument("--num-beams", type=int, default=None)
    p.add_argument("--top-k", type=int, default=None)
    p.add_argument("--top-p", type=float, default=None)
    p.add_argument("--temperature", type=float, default=None)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--stop", dest="stop_tokens", default=None,
                   help="extra comma-separated stop tokens (<|end|> always stops)")
    p.add_argument("--no-cache", action="store_true", help="recompute the whole sequence each step")
    p.add_argument("--no-xla", action="store_true", help="do not XLA-compile the decoding loop")
    p.add_argument("--stream", action="store_true", help="print tokens as they are produced")


def build_parser():
    parser = argparse.ArgumentParser(prog="vit-tf", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    data = sub.add_parser("data", help="make, validate and inspect datasets")
    dsub = data.add_subparsers(dest="data_command", required=True)
    p = dsub.add_parser("shapes", help="write the built-in shapes world")
    p.add_argument("--out", required=True)
    p.add_argument("--train", type=int, default=2000, help="training scenes")
    p.add_argument("--test", type=int, default=200, help="test scenes")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--canvas-size", type=int, default=64)
    p.add_argument("--min-objects", type=int, default=1)
    p.add_argument("--max-objects", type=int, default=3)
    p.add_argument("--families", default=None, help="comma-separated question families")
    p.add_argument("--train-questions", default="", metavar="FAMILY=N,...",
                   help="up to N questions of a family per training scene, each about another "
                        "subject, e.g. position=3 (default: one per family; the test split "
                        "always has one)")
    for name, help_ in (("validate", "report every problem in a LLaVA JSON file"),
                        ("inspect", "print records with the trained tokens marked")):
        p = dsub.add_parser(name, help=help_)
        p.add_argument("data")
        p.add_argument("--image-root", required=True)
        p.add_argument("--model", help="a run folder whose tokenizer to use")
        p.add_argument("--max-text-length", type=int, default=None)
        if name == "inspect":
            p.add_argument("--limit", type=int, default=3)
            p.add_argument("--ids", nargs="*", default=None, help="record ids to show")

    p = dsub.add_parser("real-images", help="write the real captioned images that ship in "
                        "registry packages (emoji, easy-VQA, scikit-image photos) as LLaVA JSON")
    p.add_argument("--out", required=True)
    p.add_argument("--vqa-train-images", type=int, default=4000, help="easy-VQA training images")
    p.add_argument("--vqa-test-images", type=int, default=100, help="easy-VQA test images")
    p.add_argument("--shapes-scenes", type=int, default=0, help="shapes-world training scenes")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--skip-invalid", action="store_true")

    p = dsub.add_parser("shard", help="validate a dataset and write it as TFRecord shards")
    p.add_argument("--data", required=True, help="the data file")
    p.add_argument("--format", default="llava", help="llava, coco_captions, vqa or tfds")
    p.add_argument("--annotations", default=None, help="the answers file for --format vqa")
    p.add_argument("--tfds-data-dir", default=None, help="tfds data_dir for --format tfds "
                   "(--data NAME:SPLIT; images are written under --image-root)")
    p.add_argument("--image-root", required=True)
    p.add_argument("--out", required=True, help="an empty folder for the shards")
    p.add_argument("--shards", type=int, required=True, help="number of shard files")
    p.add_argument("--skip-invalid", action="store_true")

    p = sub.add_parser("train", help="train a model on LLaVA-format data")
    p.add_argument("--data", help="LLaVA JSON or a shard folder (not needed with --resume)")
    p.add_argument("--image-root")
    p.add_argument("--out", required=True, help="run folder")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--skip-invalid", action="store_true",
                   help="train on the valid records and report how many were skipped")
    p.add_argument("--val-data", help="held-out LLaVA JSON: per-category answer accuracy each epoch")
    p.add_argument("--val-image-root", help="image root of --val-data (default: --image-root)")
    _add_train_args(p)

    p = sub.add_parser("generate", help="answer a prompt about an image")
    p.add_argument("--model", required=True, help="run folder")
    p.add_argument("--image", required=True, action="append", help="repeat for a batch")
    p.add_argument("--prompt", required=True, action="append", help="one per --image (or one for all)")
    p.add_argument("--max-new-tokens", type=int, default=None)
    add_decoding_args(p)

    p = sub.add_parser("chat", help="multi-turn chat about an image in the terminal")
    p.add_argument("--model", required=True, help="run folder")
    p.add_argument("--image", required=True)
    p.add_argument("--max-new-tokens", type=int, default=None)
    add_decoding_args(p)

    p = sub.add_parser("explain", help="relevance of each image patch to each generated token (PNG)")
    p.add_argument("--model", required=True, help="run folder")
    p.add_argument("--image", required=True)
    p.add_argument("--prompt", required=True)
    p.add_argument("--out", required=True, help="PNG to write")
    p.add_argument("--max-new-tokens", type=int, default=None)

    p = sub.add_parser("export", help="write a SavedModel that serves text from image bytes")
    p.add_argument("--model", required=True, help="run folder")
    p.add_argument("--out", required=True, help="SavedModel folder (must not exist)")

    p = sub.add_parser("eval", help="evaluate a model on a benchmark or a data file")
    p.add_argument("--model", required=True, help="run folder")
    p.add_argument("--benchmark", default=None, help="shapes or pope (questions from the "
                   "shapes world in --image-root)")
    p.add_argument("--data", default=None, help="a data file instead of a benchmark")
    p.add_argument("--format", default="llava", help="format of --data: llava, coco_captions, "
                   "vqa, tfds (default llava)")
    p.add_argument("--annotations", default=None, help="the answers file for --format vqa")
    p.add_argument("--tfds-data-dir", default=None, help="tfds data_dir for --format tfds "
                   "(--data NAME:SPLIT; images are written under --image-root)")
    p.add_argument("--image-root", required=True)
    p.add_argument("--out", default=None, help="default: RUN/eval/<benchmark>; RUN/eval for "
                   "a LLaVA --data file, RUN/eval/<data name> for another format")
    p.add_argument("--limit", type=int, default=None, help="evaluate the first N items only")
    p.add_argument("--seed", type=int, default=0, help="seed of the POPE question draw")
    p.add_argument("--max-new-tokens", type=int, default=None)
    p.add_argument("--skip-invalid", action="store_true")

    p = sub.add_parser("compare", help="print the metrics of several runs side by side")
    p.add_argument("runs", nargs="+", help="run folders, eval folders or metrics.json files")

    p = sub.add_parser("plan", help="parameters, FLOPs, activation memory, step time and peak "
                       "memory of a config's training step, before training")
    p.add_argument("--text-length", type=int, default=None,
                   help="text tokens per example (default: data.max_text_length, the worst case)")
    p.add_argument("--calibrate", action="store_true",
                   help="re-measure this machine's step-time / memory calibration")
    p.add_argument("--no-calibration", action="store_true",
                   help="skip step time and peak memory (no measuring)")
    p.add_argument("--json", action="store_true", help="print the plan as JSON")
    _add_train_args(p)

    p = sub.add_parser("pretrained", help="pretrained parts shipped in registry packages: "
                       "list them, convert them once into the cache")
    psub = p.add_subparsers(dest="pretrained_command", required=True)
    psub.add_parser("list", help="each part, its package, whether installed and converted")
    q = psub.add_parser("convert", help="convert parts into the cache (default: every installed "
                        "part); a config naming pretrained:NAME converts it on first use anyway")
    q.add_argument("names", nargs="*")

    p = sub.add_parser("quickstart", help="shapes world -> train -> evaluate, end to end")
    p.add_argument("--out", default="quickstart_out")
    p.add_argument("--train", type=int, default=4000, help="training scenes")
    p.add_argument("--test", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--train-questions", default=QUICKSTART_TRAIN_QUESTIONS, metavar="FAMILY=N,...",
                   help="the training mix: up to N questions of a family per training scene "
                        f"(default {QUICKSTART_TRAIN_QUESTIONS}; '' for one per family)")
    _add_train_args(p)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    from vit_tf import commands

    handler = getattr(commands, f"cmd_{args.command}")
    if os.environ.get("VIT_TF_DEBUG"):
        return handler(args) or 0
    from vit_tf.config import ConfigError
    from vit_tf.data.sources import DataValidationError
    from vit_tf.pretrained import PretrainedError

    try:
        return handler(args) or 0
    except DataValidationError as e:
        print(f"error: invalid data\n{e}", file=sys.stderr)
    except (ConfigError, PretrainedError, FileNotFoundError, FileExistsError, KeyError, ValueError) as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"error: {msg}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
