"""Implementations of ``vit-tf t2i ...`` (arguments in ``vit_tf.t2i.cli_args``)."""

import json
import os

import numpy as np


def run_t2i(args, log=print):
    return {"train": _train, "generate": _generate, "eval": _eval, "gate": _gate,
            "export": _export}[args.t2i_command](args, log)


def _train(args, log):
    from vit_tf.config import apply_overrides
    from vit_tf.t2i.config import T2IConfig
    from vit_tf.t2i.train import train_t2i

    overrides = list(args.overrides)
    if args.generator:
        overrides.append(f"generator={args.generator}")
    if args.skip_invalid:
        overrides.append("data.skip_invalid=true")
    config = apply_overrides(T2IConfig(), overrides)
    if args.format not in ("imagefolder", "sidecar_captions", "tfds") and not args.image_root:
        raise ValueError(f"--format {args.format} needs --image-root")
    _, summary = train_t2i(config, args.data, args.image_root, args.out, args.format, log,
                           annotations=args.annotations, tfds_data_dir=args.tfds_data_dir)
    log(f"trained in {summary['total_seconds']:.0f} s; preset: {args.out} "
        f"(vit-tf t2i generate --model {args.out} --prompt ... --out out.png)")
    return 0


def _generate(args, log):
    from PIL import Image

    from vit_tf.t2i.callbacks import image_grid
    from vit_tf.t2i.task import load_text_to_image

    if args.seeds < 1:
        raise ValueError(f"--seeds must be >= 1, got {args.seeds}")
    task = load_text_to_image(args.model)
    prompts = [p for p in args.prompt for _ in range(args.seeds)]
    images = task.generate({"prompts": prompts, "negative_prompts": [args.negative_prompt]},
                           num_steps=args.num_steps, guidance_scale=args.guidance_scale,
                           seed=args.seed, jit_compile=not args.no_xla)
    grid = image_grid(images, args.seeds) if len(images) > 1 else images[0]
    picture = Image.fromarray(grid)
    if args.scale > 1:
        picture = picture.resize((picture.width * args.scale, picture.height * args.scale),
                                 Image.NEAREST)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    picture.save(args.out)
    log(f"{len(images)} image(s) ({len(args.prompt)} prompt(s) x {args.seeds} seed(s) from "
        f"{args.seed}) -> {args.out}")
    return 0


def _model_hold_out(path):
    folder = os.path.dirname(path) if str(path).endswith(".keras") else path
    metadata = os.path.join(folder, "metadata.json")
    if os.path.exists(metadata):
        with open(metadata) as f:
            return json.load(f).get("hold_out", "")
    return ""


def _eval(args, log):
    from vit_tf.t2i.captions import parse_hold_out, read_captions
    from vit_tf.t2i.evaluate import evaluate_t2i

    if (args.model is None) == (args.baseline is None):
        raise ValueError("t2i eval needs exactly one of --model and --baseline")
    hold_out = args.hold_out
    if hold_out is None:
        hold_out = _model_hold_out(args.model) if args.model else ""
    hold_out = parse_hold_out(hold_out)
    pairs = None
    if args.train_data:
        if not args.image_root:
            raise ValueError("--train-data needs --image-root")
        pairs = read_captions(args.train_data, args.image_root, hold_out=hold_out).pairs
    evaluate_t2i(args.model or args.baseline, args.out, args.per_task, args.seed, hold_out,
                 pairs, args.judge, args.best_of, args.diversity_prompts, args.diversity_seeds,
                 args.num_steps, args.guidance_scale, log)
    log(f"metrics: {os.path.join(args.out, 'metrics.json')}")
    return 0


def _gate(args, log):
    from PIL import Image

    from vit_tf.t2i.callbacks import image_grid
    from vit_tf.t2i.captions import read_captions
    from vit_tf.t2i.evaluate import tokenizer_gate
    from vit_tf.t2i.task import load_text_to_image
    from vit_tf.t2i.train import load_images

    task = load_text_to_image(args.model)
    if not hasattr(task, "image_tokenizer"):
        raise ValueError(f"{args.model}: a {type(task).__name__} has no image tokenizer")
    pairs = read_captions(args.data, args.image_root, categories=()).pairs
    paths = list(dict.fromkeys(p.image_path for p in pairs))[:args.limit]
    images = load_images(paths, task.preprocessor.image_size)
    result, recon = tokenizer_gate(task.image_tokenizer, images)
    log(f"tokenizer gate: {result['parsed_equal']:.1%} of {result['images']} held-out images "
        "parse back as the same scene")
    if args.out:
        Image.fromarray(image_grid(np.concatenate([images[:8], recon[:8]]), 8)).save(args.out)
    return 0 if result["images"] else 1


def _export(args, log):
    from vit_tf.t2i.export import SIGNATURE, export_text_to_image
    from vit_tf.t2i.task import load_text_to_image

    out = export_text_to_image(load_text_to_image(args.model), args.out, args.num_steps)
    log(f"SavedModel: {out} (signature {SIGNATURE!r}: prompts (batch,) string -> png (batch,) "
        "string; 'generate' also takes negative_prompts, seed, guidance_scale)")
    return 0
