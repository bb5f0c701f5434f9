"""Implementations of the ``vit-tf`` subcommands (argument parsing lives in ``cli.py``)."""

import collections
import json
import os
import sys
import time


def _log(msg):
    print(msg, flush=True)


def cmd_data(args):
    return {"shapes": data_shapes, "validate": data_validate, "inspect": data_inspect,
            "shard": data_shard, "easy-vqa": data_easy_vqa,
            "real-images": data_real_images}[args.data_command](args)


def data_easy_vqa(args):
    from vit_tf.data.sources.easy_vqa import write_easy_vqa

    summary = write_easy_vqa(args.out)
    for split, s in summary.items():
        _log(f"{split}: {s['images']} images, {s['records']} records -> "
             f"{os.path.join(args.out, split + '.json')}")
    return 0


def data_real_images(args):
    from vit_tf.data.real_images import build_real_images

    build_real_images(args.out, vqa_train_images=args.vqa_train_images,
                      vqa_test_images=args.vqa_test_images, shapes_scenes=args.shapes_scenes,
                      seed=args.seed, skip_invalid=args.skip_invalid, log=_log)
    _log(f"licences and counts: {os.path.join(args.out, 'sources.json')}")
    return 0


def data_shard(args):
    from vit_tf.data.shards import write_shards
    from vit_tf.data.sources.readers import read_data_argument

    data = read_data_argument(args.format, args.data, args.image_root,
                              annotations=args.annotations, tfds_data_dir=args.tfds_data_dir,
                              skip_invalid=args.skip_invalid)
    if data.skipped:
        _log(f"skipped {data.skipped} of {data.report.n_records} records: "
             f"{data.report.summary()}")
    manifest = write_shards(data.records, args.out, args.shards,
                            source={"data": os.path.abspath(args.data), "format": args.format})
    _log(f"{manifest['num_records']} records -> {manifest['num_shards']} shards in {args.out} "
         f"(train with --data {args.out})")
    return 0


NO_CAPTIONS_DROPS = ("caption", "description")   # `vit-tf data shapes --no-captions`


def data_shapes(args):
    from vit_tf.data.shapes import FAMILIES, ShapesConfig, parse_questions, write_shapes_world

    families = tuple(f.strip() for f in args.families.split(",")) if args.families else FAMILIES
    if getattr(args, "no_captions", False):
        families = tuple(f for f in families if f not in NO_CAPTIONS_DROPS)
    config = ShapesConfig(canvas_size=args.canvas_size, min_objects=args.min_objects,
                          max_objects=args.max_objects, families=families)
    summary = write_shapes_world(args.out, args.train, args.test, seed=args.seed, config=config,
                                 train_questions=parse_questions(args.train_questions))
    for split in ("train", "test"):
        s = summary[split]
        _log(f"{split}: {s['scenes']} scenes, {s['records']} records -> "
             f"{os.path.join(args.out, split + '.json')}")
    return 0


def _preprocessor_and_length(args, records):
    """The model's preprocessor (``--model``), else a WordPiece trained on ``records``."""
    max_len = args.max_text_length
    if args.model:
        from vit_tf.data.preprocessor import VisionLanguagePreprocessor

        preprocessor = VisionLanguagePreprocessor.from_preset(args.model)
        return preprocessor, max_len or preprocessor.max_text_length
    from vit_tf.config import ExperimentConfig
    from vit_tf.data.preset_tokenizer import preprocessor_for_config
    from vit_tf.data.tokenizer import conversation_texts

    config = ExperimentConfig()
    preprocessor = preprocessor_for_config(config, conversation_texts(records))
    return preprocessor, max_len or config.data.max_text_length


def data_validate(args):
    from vit_tf.data.prepare import prepare_records
    from vit_tf.data.sources import read_llava

    records = read_llava(args.data, args.image_root, skip_invalid=True).records
    preprocessor, max_len = _preprocessor_and_length(args, records)
    _, _, report = prepare_records(args.data, args.image_root, max_text_length=max_len,
                                   preprocessor=preprocessor, skip_invalid=True)
    _log(report.format())
    return 0 if report.ok else 1


def format_trained_tokens(preprocessor, ids, mask):
    """Tokens of one example with the trained (in-the-loss) runs wrapped in [[ ]]."""
    out, open_ = [], False
    for tid, trained in zip(ids, mask):
        if trained and not open_:
            out.append("[[")
            open_ = True
        if not trained and open_:
            out.append("]]")
            open_ = False
        out.append(preprocessor.id_to_token(int(tid)))
    if open_:
        out.append("]]")
    return " ".join(out).replace("[[ ", "[[").replace(" ]]", "]]")


def data_inspect(args):
    from vit_tf.data.sources import read_llava

    records = read_llava(args.data, args.image_root, skip_invalid=True).records
    preprocessor, _ = _preprocessor_and_length(args, records)
    chosen = [r for r in records if r["id"] in set(args.ids)] if args.ids else records[: args.limit]
    encoded = preprocessor.encode_conversations([r["conversations"] for r in chosen])
    for r, (ids, mask) in zip(chosen, encoded):
        ids, mask = ids[:-1], mask[:-1]  # the final [PAD] only shifts the labels
        _log(f"record {r['id']} (category {r['category'] or '-'}, image {r['image']}): "
             f"{len(ids)} text tokens, {int(sum(mask))} trained")
        _log("  " + format_trained_tokens(preprocessor, ids, mask) + "\n")
    _log("[[...]] marks the tokens in the loss: the assistant's answers and their <|end|>.")
    return 0


def _resolve_config(args):
    from vit_tf.config import apply_overrides
    from vit_tf.experiments import load_experiment

    return apply_overrides(load_experiment(args.experiment), args.overrides)


def cmd_train(args):
    from vit_tf.data.shards import is_shard_source
    from vit_tf.training.train import train

    if args.resume:
        if args.overrides:
            raise ValueError("--resume continues the run with its saved config; drop --set")
        from vit_tf.config import load_config

        config = load_config(os.path.join(args.out, "config.json"))
    else:
        if not (args.data and (args.image_root or is_shard_source(args.data))):
            raise ValueError("train needs --data and --image-root (or --resume)")
        config = _resolve_config(args)
    if args.skip_invalid:
        config.data.skip_invalid = True
    if args.resume and not (args.data and (args.image_root or is_shard_source(args.data))):
        raise ValueError("--resume needs the same --data and --image-root as the first run")
    from vit_tf.training.checkpointing import CheckpointWriteError
    from vit_tf.training.nan_guard import NonFiniteLossError

    try:
        summary = train(config, args.data, args.image_root, args.out, resume=args.resume,
                        log=_log, val_json=args.val_data, val_image_root=args.val_image_root)
    except (NonFiniteLossError, CheckpointWriteError) as e:
        # diverged, or the disk filled: the message names the step / folder and what was kept
        print(f"error: {e}", file=sys.stderr)
        return 1
    _log(f"trained in {summary['seconds']:.0f} s; preset: {args.out} (--model {args.out}; "
         f"VisionLanguageModel.from_preset({args.out!r}))")
    return 0


def _task(args):
    """(task, GenerateConfig with the command's decoding flags) of ``--model``."""
    from vit_tf.runs import generate_defaults, load_task

    return load_task(args.model), generate_config(args, generate_defaults(args.model))


def _generator(task, g):
    from vit_tf.models.generation import Generator

    return Generator.from_config(task, g)


def cmd_generate(args):
    from vit_tf.data.sources import load_image_rgb

    prompts = args.prompt * len(args.image) if len(args.prompt) == 1 else args.prompt
    if len(prompts) != len(args.image):
        raise ValueError(f"{len(args.image)} --image but {len(args.prompt)} --prompt")
    task, g = _task(args)
    for path in args.image:
        load_image_rgb(path)  # a clear error naming the file for a missing or corrupt image
    generator = _generator(task, g)
    conversations = [[{"from": "human", "value": p}] for p in prompts]
    if getattr(args, "stream", False):
        answers = [""] * len(prompts)
        for event in generator.stream(list(args.image), conversations):
            for i, delta in enumerate(event.text_deltas):
                answers[i] += delta
            if len(prompts) == 1 and event.text_deltas[0]:
                print(event.text_deltas[0], end="", flush=True)
        if len(prompts) == 1:
            print()
            return 0
    else:
        answers = generator.generate(list(args.image), conversations)
    for answer in answers:
        print(answer)
    return 0


def generate_config(args, g):
    """``GenerateConfig`` ``g`` with the decoding flags of ``args`` applied."""
    import dataclasses

    flags = {"max_new_tokens": "max_new_tokens", "strategy": "strategy", "num_beams": "num_beams",
             "top_k": "top_k", "top_p": "top_p", "temperature": "temperature", "seed": "seed",
             "stop_tokens": "stop_tokens"}
    changes = {field: getattr(args, flag) for flag, field in flags.items()
               if getattr(args, flag, None) is not None}
    if getattr(args, "no_cache", False):
        changes["use_cache"] = False
    if getattr(args, "no_xla", False):
        changes["jit_compile"] = False
    return dataclasses.replace(g, **changes)


def cmd_chat(args):
    import sys

    from vit_tf.inference.chat import ChatSession, image_loader, run_chat

    task, g = _task(args)
    session = ChatSession(_generator(task, g), image_loader(task.preprocessor), args.image)

    def lines():
        while True:
            try:
                yield input("you> ")
            except EOFError:
                return

    def stream_write(piece):
        sys.stdout.write(piece)
        sys.stdout.flush()

    run_chat(session, lines(), stream_write=stream_write)
    return 0


def cmd_serve(args):
    from vit_tf.runs import generate_defaults
    from vit_tf.serve.app import serve

    if not 0 < args.port < 65536:
        raise ValueError(f"--port {args.port}: expected 1..65535")
    g = generate_config(args, generate_defaults(args.model))
    _log(f"serving {args.model} on http://{args.host}:{args.port} (Ctrl+C stops)")
    serve(args.model, host=args.host, port=args.port, generate_config=g)
    return 0


def cmd_explain(args):
    from vit_tf.inference.chat import image_loader
    from vit_tf.models.explain import explain, render_overlay

    task, g = _task(args)
    image = image_loader(task.preprocessor)(args.image)
    result = explain(task, image, args.prompt, args.max_new_tokens or g.max_new_tokens)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    render_overlay(result).save(args.out)
    _log(f"answer: {result.answer}")
    grid = result.relevance.shape[1]
    for token, rel in zip(result.tokens, result.relevance):
        row, col = divmod(int(rel.argmax()), grid)
        _log(f"  {token:>14}: most relevant patch row {row}, column {col} "
             f"({rel.max() / max(rel.sum(), 1e-12):.0%} of its relevance)")
    _log(f"relevance maps (gradient x input, {result.patch_size}-pixel patches): {args.out}")
    return 0


def cmd_export(args):
    from vit_tf.export.saved_model import SIGNATURE, export_run

    out = export_run(args.model, args.out)
    _log(f"SavedModel: {out} (signature {SIGNATURE!r}: images (batch,) bytes, prompts (batch,) "
         "string, max_new_tokens () int32 -> text, num_tokens)")
    _log(f"inspect: saved_model_cli show --dir {out} --tag_set serve --signature_def {SIGNATURE}")
    return 0


def cmd_eval(args):
    from vit_tf.eval.evaluate import evaluate_run

    out = args.out
    if out is None and args.benchmark is None and args.format == "llava":
        out = os.path.join(args.model, "eval")  # where earlier versions wrote
    evaluate_run(args.model, image_root=args.image_root, benchmark=args.benchmark,
                 data=args.data, data_format=args.format, annotations=args.annotations,
                 tfds_data_dir=args.tfds_data_dir,
                 out=out, limit=args.limit, seed=args.seed, skip_invalid=args.skip_invalid,
                 max_new_tokens=args.max_new_tokens, log=_log)
    return 0


def cmd_compare(args):
    from vit_tf.eval.compare import compare_runs

    print(compare_runs(args.runs))
    return 0


def cmd_pretrained(args):
    from vit_tf import pretrained

    if args.pretrained_command == "list":
        print(f"{'name':24s} {'kind':14s} {'package':40s} {'installed':10s} converted")
        for r in pretrained.catalog_rows():
            print(f"{r['name']:24s} {r['kind']:14s} {r['package']:40s} "
                  f"{r['installed'] or '-':10s} {'yes' if r['converted'] else 'no'}")
        print(f"cache: {pretrained.cache_root()}")
        return 0
    names = args.names or [r["name"] for r in pretrained.catalog_rows() if r["installed"]]
    if not names:
        raise pretrained.PretrainedError("no pretrained package is installed; see "
                                         "vit-tf pretrained list")
    for name in names:
        print(f"{name}: {pretrained.pretrained_dir(name, log=_log)}")
    return 0


def cmd_t2i(args):
    from vit_tf.t2i.commands import run_t2i

    return run_t2i(args, log=_log)


def sample_conversations(items, n=3):
    """The first ``n`` multi-turn records, each turn with the reference and the model's answer."""
    by_record = collections.defaultdict(list)
    for it in items:
        by_record[it["record_id"]].append(it)
    multi = [v for v in by_record.values() if len(v) >= 3][:n]
    lines = []
    for turns in multi:
        lines.append(f"--- {turns[0]['record_id']}")
        for it in sorted(turns, key=lambda t: t["turn"]):
            question = it["prompt"][-1]["value"].replace("<image>", "").strip()
            mark = "ok" if it["correct"] else "WRONG"
            lines.append(f"  user:  {question}\n  model: {it['prediction']}   "
                         f"(reference: {it['reference']}; {mark})")
    return "\n".join(lines)


def cmd_plan(args):
    from vit_tf.experiments import load_experiment
    from vit_tf.planning.planner import calibrated, format_plan, make_plan, to_json

    config = _resolve_config(args)
    calibration = None
    if not args.no_calibration:
        calibration = calibrated(load_experiment("default"), config.train.jit_compile,
                                 recalibrate=args.calibrate, log=_log)
    plan = make_plan(config, text_length=args.text_length, calibration=calibration)
    _log(json.dumps(to_json(plan), indent=2) if args.json else format_plan(plan))
    return 0


def cmd_quickstart(args):
    from vit_tf.data.shapes import parse_questions, write_shapes_world
    from vit_tf.eval.evaluate import evaluate_run
    from vit_tf.training.train import train

    start = time.perf_counter()
    data_dir = os.path.join(args.out, "shapes")
    run = os.path.join(args.out, "run")
    _log(f"1/3 writing the shapes world to {data_dir}")
    write_shapes_world(data_dir, args.train, args.test, seed=args.seed,
                       train_questions=parse_questions(args.train_questions))
    t_data = time.perf_counter() - start
    _log(f"2/3 training experiment {args.experiment!r} into {run}")
    config = _resolve_config(args)
    train(config, os.path.join(data_dir, "train.json"), data_dir, run, log=_log)
    t_train = time.perf_counter() - start - t_data
    _log("3/3 evaluating on the held-out test split (benchmark shapes)")
    _, items = evaluate_run(run, benchmark="shapes", image_root=data_dir,
                            out=os.path.join(run, "eval"), log=_log)
    t_eval = time.perf_counter() - start - t_data - t_train
    _log("\nthree sample conversations (test split):")
    _log(sample_conversations(items))
    total = time.perf_counter() - start
    timing = {"data_s": round(t_data, 1), "train_s": round(t_train, 1),
              "eval_s": round(t_eval, 1), "total_s": round(total, 1)}
    with open(os.path.join(args.out, "quickstart_timing.json"), "w") as f:
        json.dump(timing, f, indent=2)
    _log(f"\ntime: data {t_data:.0f} s + training {t_train:.0f} s + evaluation {t_eval:.0f} s "
         f"= {total / 60:.1f} min")
    _log(f"TensorBoard logs: tensorboard --logdir {os.path.join(run, 'logs')}")
    return 0


def cmd_pretrain(args):
    from vit_tf.training.pretrain import pretrain

    if args.resume and args.overrides:
        raise ValueError("--resume continues the run with its saved config; drop --set")
    config = None if args.resume else _resolve_config(args)
    if args.skip_invalid and config is not None:
        config.data.skip_invalid = True
    summary = pretrain(config, args.data, args.image_root, args.out, data_format=args.format,
                       val_data=args.val_data, val_image_root=args.val_image_root,
                       resume=args.resume, log=_log)
    _log(f"pretrained {summary['epochs']} epochs ({summary['steps']} steps) in "
         f"{summary['fit_seconds']:.0f} s of training, {summary['seconds']:.0f} s in all; "
         f"image encoder preset: --set model.encoder.preset={args.out}/image_encoder")
    if args.val_data or args.shapes or args.easy_vqa:
        args.model, args.data = args.out, args.val_data
        args.image_root = args.val_image_root or args.image_root
        args.out = None
        return cmd_pretrain_eval(args)
    return 0


def cmd_pretrain_eval(args):
    from vit_tf.eval.contrastive import evaluate_encoder
    from vit_tf.models.contrastive import DualEncoder, build_dual_encoder
    from vit_tf.runs import run_config

    if args.data and not args.image_root:
        raise ValueError("--data needs --image-root")
    model = DualEncoder.from_preset(args.model)
    config = run_config(args.model)
    random_model = None
    if args.shapes and config is not None:   # the probe's reference: the same towers, untrained
        import keras

        keras.utils.set_random_seed(config.train.seed + 1)
        random_model = build_dual_encoder(config, model.tokenizer)
    report = evaluate_encoder(model, data=args.data, image_root=args.image_root,
                              texts=config.pretrain.texts if config else
                              "caption,description,questions",
                              shapes_dir=args.shapes, prompts=args.prompts,
                              easy_vqa_dir=args.easy_vqa, random_model=random_model, log=_log)
    out = args.out or os.path.join(args.model, "eval", "report.json")
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "w") as f:
        json.dump({"model": os.path.abspath(args.model), "prompts": args.prompts, **report}, f,
                  indent=2)
    _log(f"report: {out}")
    return 0
