"""``vit-tf``: one console entry point with subcommands.

    vit-tf data shapes    --out DIR --train N --test M --seed S
    vit-tf data validate  DATA --image-root DIR
    vit-tf data inspect   DATA --image-root DIR [--model RUN] [--limit N]
    vit-tf data real-images --out DIR [--vqa-train-images N] [--shapes-scenes N]
    vit-tf data shard     --data DATA --image-root DIR --out DIR --shards N [--format F]
    vit-tf train          --data DATA --image-root DIR --out RUN [--experiment NAME] [--set k=v ...]
    vit-tf generate       --model RUN --image IMG --prompt "..."
    vit-tf chat           --model RUN --image IMG
    vit-tf serve          --model RUN [--host H --port P]
    vit-tf explain        --model RUN --image IMG --prompt "..." --out PNG
    vit-tf export         --model RUN --out DIR
    vit-tf eval           --model RUN (--benchmark shapes|pope | --data FILE [--format F]) --image-root DIR
    vit-tf compare        RUN_A RUN_B ...
    vit-tf quickstart     [--out DIR]
    vit-tf plan           [--experiment NAME] [--set k=v ...] [--text-length N] [--calibrate]
    vit-tf pretrain       --data DATA --image-root DIR --out DIR [--val-data F] [--shapes DIR] [--resume]
    vit-tf pretrain-eval  --model DIR [--data F --image-root DIR] [--shapes DIR] [--easy-vqa DIR]
    vit-tf pretrained     list | convert [NAME ...]
    vit-tf t2i            train | generate | eval | gate | export   (text-to-image; vit_tf.t2i)

Bad input ends with ``error: ...`` naming the file, record id and field, and exit status 2
(set VIT_TF_DEBUG=1 for the traceback). An exception raised outside vit_tf's own code (a bug,
or input nothing validated) keeps its traceback. TensorFlow's start-up notices that say nothing
about the run (absl's pre-init banner and INFO/WARNING lines under TF_CPP_MIN_LOG_LEVEL, the
CUDA ``cuInit`` failure on a machine without an NVIDIA driver) are filtered from stderr;
everything else passes through (VIT_TF_DEBUG=1: nothing is filtered).
"""

import argparse
import os
import re
import sys
import threading

QUICKSTART_TRAIN_QUESTIONS = "position=4,attribute=2,existence=3,relation=12"
"""The quickstart's training mix (``vit-tf data shapes --train-questions``): up to 4 position,
2 attribute, 3 existence and 12 relation questions per training scene, each about another
subject (relations as mirrored yes/no pairs, forms in turn). Binding a named object (its side,
its colour, its size) is learned from these far faster than from one question per family and
scene ("Fifth round" of vit_tf/experiments/README.md); comparing two named objects only once
relations are about a third of the questions: with ``relation=4`` they stayed at chance, with
12 the yes/no relations reached 97% ("Seventh round"). The test split always has one question
per family."""

DATA_FORMATS = ("llava", "coco_captions", "vqa", "tfds", "imagefolder", "sidecar_captions")
"""What ``--format`` accepts: the readers of ``vit_tf.data.sources.SOURCES`` (a test keeps them
equal; an unknown name is refused by the reader registry with ``error: ...``). ``imagefolder``
and ``sidecar_captions`` take the folder as ``--data`` (and as ``--image-root``)."""

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


def add_pretrain_parsers(sub):
    """``vit-tf pretrain`` (contrastive stage) and ``vit-tf pretrain-eval`` (its evaluation)."""
    def eval_args(p):
        p.add_argument("--shapes", default=None, help="a shapes world folder: zero-shot on its "
                       "held-out scenes and a linear probe (train -> test)")
        p.add_argument("--prompts", choices=("caption", "question"), default="caption",
                       help="zero-shot prompt phrasing (question: for question-only pretraining)")
        p.add_argument("--easy-vqa", default=None, help="an easy-VQA folder (vit-tf data "
                       "easy-vqa): zero-shot colour and shape on its test images")

    p = sub.add_parser("pretrain", help="contrastive (CLIP / SigLIP) pretraining of the image "
                       "encoder on image-text pairs; writes a dual-encoder preset and "
                       "OUT/image_encoder (model.encoder.preset=OUT/image_encoder)")
    p.add_argument("--data", required=True)
    p.add_argument("--image-root", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--format", default="llava", help="llava, coco_captions, vqa or tfds")
    p.add_argument("--val-data", default=None, help="held-out pairs: retrieval each epoch and "
                   "at the end")
    p.add_argument("--val-image-root", default=None)
    p.add_argument("--skip-invalid", action="store_true")
    p.add_argument("--resume", action="store_true", help="continue the interrupted run in --out "
                   "from its last checkpoint (same --data, --image-root, --val-data)")
    eval_args(p)
    _add_train_args(p)
    p = sub.add_parser("pretrain-eval", help="retrieval, zero-shot and linear probe of a "
                       "pretrained dual encoder")
    p.set_defaults(command="pretrain_eval")
    p.add_argument("--model", required=True, help="a vit-tf pretrain folder")
    p.add_argument("--data", default=None, help="held-out pairs (LLaVA JSON) for retrieval")
    p.add_argument("--image-root", default=None)
    p.add_argument("--out", default=None, help="report JSON (default MODEL/eval/report.json)")
    eval_args(p)


def add_serve_args(sub):
    """``vit-tf serve``: the browser chat (vit_tf.serve)."""
    p = sub.add_parser("serve", help="a browser chat about an image (Gradio): upload, ask, "
                       "answers stream in")
    p.add_argument("--model", required=True, help="preset, run folder or .keras file")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only; 0.0.0.0: "
                        "every interface)")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--max-new-tokens", type=int, default=None)


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
                        "always has one); also order=N (listings of the objects along an "
                        "axis), nearest=N (more closest / furthest questions), "
                        "compare=N (is B closer to A than C?) and locate=N (each "
                        "object's centre in pixels)")
    p.add_argument("--no-captions", action="store_true",
                   help="question-only: no caption or description records (the other "
                        "families' questions are unchanged)")
    p = dsub.add_parser("easy-vqa", help="write easy-VQA (from the easy-vqa package) as LLaVA JSON")
    p.add_argument("--out", required=True)
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
    p.add_argument("--format", default="llava", help=", ".join(DATA_FORMATS))
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

    add_serve_args(sub)

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
    p.add_argument("--format", default="llava", help="format of --data: "
                   f"{', '.join(DATA_FORMATS)} (default llava)")
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

    add_pretrain_parsers(sub)
    from vit_tf.t2i.cli_args import add_t2i_parser

    add_t2i_parser(sub)

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


_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


def raised_by_vit_tf(error):
    """True when the innermost frame of ``error``'s traceback is vit_tf's code: a deliberate
    error about the user's input. A ``KeyError`` / ``ValueError`` raised inside numpy, Keras,
    TensorFlow... is unexpected (most likely a bug, or input vit_tf did not validate)."""
    tb = error.__traceback__
    if tb is None:
        return True
    while tb.tb_next is not None:
        tb = tb.tb_next
    return os.path.abspath(tb.tb_frame.f_code.co_filename).startswith(_PACKAGE_DIR)


class StartupNoiseFilter:
    """Forward stderr (the file descriptor: C++ logging included) minus TensorFlow's start-up
    noise: absl's "before absl::InitializeLog()" banner, INFO (and WARNING) lines that
    ``TF_CPP_MIN_LOG_LEVEL`` (1, 2) asks to hide but that are printed before absl reads it,
    the CPU-instructions note, oneDNN's int64 fallback note, and the CUDA "failed call to
    cuInit" error on a machine without an NVIDIA driver. Every other line passes unchanged."""

    def __init__(self, err_fd=2):
        level = os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0")
        level = int(level) if level.isdigit() else 0
        patterns = [rb"^WARNING: All log messages before absl::InitializeLog\(\) is called",
                    rb"^To enable the following instructions: ",
                    rb"^E\d{4} .*oneDNN supports DT_INT64 only on platforms with AVX-512"]
        if level >= 1:
            patterns.append(rb"^I\d{4} ")
        if level >= 2:
            patterns.append(rb"^W\d{4} ")
        if not os.path.exists("/proc/driver/nvidia"):
            patterns.append(rb"^E\d{4} .*failed call to cuInit")
        self.noise = re.compile(b"|".join(patterns))
        self.err_fd = err_fd
        self.saved = os.dup(err_fd)
        read_fd, write_fd = os.pipe()
        os.dup2(write_fd, err_fd)
        os.close(write_fd)
        self.thread = threading.Thread(target=self._pump, args=(read_fd,), daemon=True)
        self.thread.start()

    def _pump(self, read_fd):
        with os.fdopen(read_fd, "rb", buffering=0) as pipe:
            for line in iter(pipe.readline, b""):
                if not self.noise.search(line):
                    os.write(self.saved, line)

    def close(self):
        sys.stderr.flush()
        os.dup2(self.saved, self.err_fd)   # closes the pipe's last write end: the pump ends
        self.thread.join(timeout=5)
        os.close(self.saved)


def main(argv=None):
    args = build_parser().parse_args(argv)
    if os.environ.get("VIT_TF_DEBUG"):
        from vit_tf import commands

        return getattr(commands, f"cmd_{args.command}")(args) or 0
    quiet = StartupNoiseFilter() if sys.stderr is sys.__stderr__ else None
    try:
        return _run(args)
    finally:
        if quiet is not None:
            quiet.close()


def _run(args):
    from vit_tf import commands
    from vit_tf.config import ConfigError
    from vit_tf.data.sources import DataValidationError
    from vit_tf.pretrained import PretrainedError

    handler = getattr(commands, f"cmd_{args.command}")
    try:
        return handler(args) or 0
    except DataValidationError as e:
        print(f"error: invalid data\n{e}", file=sys.stderr)
    except (ConfigError, PretrainedError, FileNotFoundError, FileExistsError) as e:
        print(f"error: {e}", file=sys.stderr)
    except (KeyError, ValueError) as e:
        if not raised_by_vit_tf(e):
            raise   # unexpected: keep the traceback
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"error: {msg}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
