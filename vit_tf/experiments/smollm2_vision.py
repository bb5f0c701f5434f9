"""SmolLM2-135M-Instruct learns to see through EfficientNet-Lite0: the shared config and steps of
LLaVA's two-stage recipe on real captioned images, offline (issue 14).

Parts (converted once from pip packages, ``vit-tf pretrained convert``): EfficientNet-Lite0
(ImageNet-1k, frozen; its 7x7x1280 map average-pooled to 3x3 = 9 image tokens) -> a 2-layer MLP
projector (1280 -> 576, LLaVA-1.5's) -> SmolLM2-135M-Instruct (ChatML). Data: ``vit-tf data
real-images`` (``vit_tf.data.real_images``). The recipes, one file each, run as:

    python -m vit_tf.experiments.smollm2_vision features --data DIR     # encoder tokens, once
    python -m vit_tf.experiments.smollm2_vision lm-chat --data DIR      # text-only chat data
    python -m vit_tf.experiments.smollm2_visual_prompting --data DIR --out runs/vp
    python -m vit_tf.experiments.smollm2_stage1 --data DIR --out runs/s1
    python -m vit_tf.experiments.smollm2_stage2_lora --data DIR --init runs/s1 --out runs/s2_lora
    python -m vit_tf.experiments.smollm2_stage2_full --data DIR --init runs/s1 --out runs/s2_full
    python -m vit_tf.experiments.smollm2_vision eval --data DIR --model runs/s1   # each model
    python -m vit_tf.experiments.smollm2_vision presence --data DIR --model runs/s2_lora
    vit-tf compare runs/vp runs/s1 runs/s2_lora runs/s2_full                      # the table

Training runs on cached encoder tokens (``vit_tf.models.image_features``): the encoder is
frozen in both stages, so each image is encoded once. The saved presets take pixels as usual
(``vit-tf generate``, ``chat``, ``eval``). Results: ``vit_tf/experiments/README.md``,
"SmolLM2 learns to see".
"""

import argparse
import dataclasses
import json
import os
import sys
import time

from vit_tf.config import ExperimentConfig, PolicyConfig, apply_overrides, save_config, to_dict

FEATURES_DIR = "features_efficientnet_lite0_{size}_p{pool_grid}"   # one cache per encoder setting
TRAIN_FILE = "train.json"
EVAL_FILES = ("heldout_captions.json", "easyvqa_test.json")
REFERENCE_FILE = "lm_reference_answers.json"
LM_CHAT_FILE = "lm_chat.json"


def get_config():
    config = ExperimentConfig()
    config.name = "smollm2_vision"
    d = config.data
    d.image_size = 224                 # EfficientNet-Lite0's ImageNet resolution
    d.max_text_length = 96             # ChatML turns: captions/questions need 25-60 tokens
    d.batch_size = 8                  # ~8 s per step on 2 cores: more, smaller steps
    d.pad_widths = "32,48,64,96"       # few XLA shapes
    e = config.model.encoder
    e.name, e.weights, e.trainable, e.pool_grid = ("efficientnet_lite0",
                                                   "pretrained:efficientnet_lite0", False, 3)
    config.model.projector.name = "mlp"
    config.model.decoder.name = "llama"
    config.model.decoder.preset = "pretrained:smollm2_135m_instruct"
    t = config.train
    t.steps_per_execution = 1
    t.clipnorm, t.global_clipnorm = 0.0, 1.0
    t.weight_decay = 0.0
    t.min_learning_rate = 0.0
    g = config.generate
    g.max_new_tokens, g.batch_size = 20, 16
    return config


def stage_config(config, *, steps, learning_rate, warmup_steps, policy, categories):
    """A stage as config: ``train.epochs=1`` of at most ``steps`` steps with ``policy``, at a
    constant rate after warmup (a run may stop at its time budget: ``--minutes``)."""
    config = dataclasses.replace(config)
    config.train = dataclasses.replace(config.train, epochs=1, steps_per_epoch=steps,
                                       learning_rate=learning_rate, warmup_steps=warmup_steps,
                                       min_learning_rate=learning_rate, policy=policy)
    config.train.stage1 = dataclasses.replace(config.train.stage1, categories=categories)
    return config


def read_split(data_dir, name, categories="", max_per_category=0, seed=0,
               balance_presence=False, pair_presence=False):
    """Validated records of ``DATA/name`` (``read_llava``), optionally of some categories and
    at most ``max_per_category`` of each (a seeded sample: easy-VQA's 14k questions would
    otherwise be 3/4 of the instruction mix). ``balance_presence``: easy-VQA's sample asks
    as many yes/no questions about a present thing as about an absent one
    (``presence_balanced``); ``pair_presence``: each of its yes/no questions comes with its
    complement (``presence_pairs``)."""
    import numpy as np

    from vit_tf.data.sources.llava import read_llava
    from vit_tf.training.stages import stage1_records

    records = stage1_records(read_llava(os.path.join(data_dir, name), data_dir).records,
                             categories)
    if not max_per_category:
        return records
    rng, chosen = np.random.default_rng(seed), []
    for category in sorted({r["category"] for r in records}):
        group = [r for r in records if r["category"] == category]
        if balance_presence and category == "easy_vqa":
            keep = presence_balanced(group, max_per_category, rng)
        else:
            keep = sorted(rng.permutation(len(group))[:max_per_category])
        chosen += [group[i] for i in keep]
        if pair_presence and category == "easy_vqa":
            chosen += presence_pairs([group[i] for i in keep], group, rng)
    return chosen


def _question(record):
    """(question without the image marker, lower-case answer) of a one-turn record."""
    turns = record["conversations"]
    return turns[0]["value"].replace("<image>", "").strip(), turns[1]["value"].strip().lower()


def presence_pairs(sample, records, rng):
    """For each yes/no question of the easy-VQA ``sample``, its complement: the same image and
    wording with the named colour or shape swapped so the answer flips
    (``easy_vqa.complement``; each image's colour and shape as all its ``records`` state them).

    Why: no run learned to see whether a named thing is there (the margin log P(yes) -
    log P(no) separates present from absent with an AUC of 0.55-0.61 within a question form,
    ``smollm2_vision presence``), neither from easy-VQA's sample (four in five name an absent
    thing) nor from a presence-balanced one. In a complementary pair (VQA v2's remedy for
    answer priors) the wording is the same and only the image can tell the two answers apart.
    """
    from vit_tf.data.sources.easy_vqa import complement, stated_attributes

    truth = {}
    for r in records:
        for attr, value in stated_attributes(*_question(r)):
            truth.setdefault(r["image_path"], {})[attr] = value
    pairs = []
    for r in sample:
        question, answer = _question(r)
        if answer not in ("yes", "no"):
            continue
        flipped = complement(question, answer, truth.get(r["image_path"], {}), rng)
        if flipped is None:
            continue
        human = r["conversations"][0]["value"].replace(question, flipped[0])
        pairs.append({**r, "id": f"{r['id']}-complement",
                      "conversations": [{**r["conversations"][0], "value": human},
                                        {**r["conversations"][1], "value": flipped[1]}]})
    return pairs


def presence_balanced(records, count, rng):
    """Indices of ``count`` easy-VQA ``records``: the open questions (shape, colour) in their
    share of the set, the yes/no questions half about a colour or shape the image has, half
    about one it lacks (as far as the present ones go).

    Why: four in five of easy-VQA's yes/no questions name an absent thing, and a model tuned
    on them answered "absent" to every question about a present one (0 of 12 in the test
    sample, 73 of 73 right the other way: smollm2_stage2_plora's docstring)."""
    from vit_tf.data.sources.easy_vqa import asks_about_present

    kinds = {None: [], True: [], False: []}
    for i, r in enumerate(records):
        kinds[asks_about_present(*_question(r))].append(i)
    count = min(count, len(records))
    n_open = round(count * len(kinds[None]) / len(records))
    n_present = min(len(kinds[True]), (count - n_open) // 2)
    n_absent = min(len(kinds[False]), count - n_open - n_present)
    keep = []
    for kind, n in ((None, n_open), (True, n_present), (False, n_absent)):
        group = kinds[kind]
        keep += [group[j] for j in rng.permutation(len(group))[:n]]
    return sorted(keep)


def new_task(config):
    from vit_tf.data.preset_tokenizer import preprocessor_for_config
    from vit_tf.models.factory import build_task

    return build_task(config, preprocessor_for_config(config))


def feature_cache(task, data_dir, log=print):
    """The encoder tokens of every training image (built on first use)."""
    from vit_tf.models.image_features import ImageFeatureCache

    paths = [r["image_path"] for r in read_split(data_dir, TRAIN_FILE)]
    encoder = task.image_encoder
    folder = FEATURES_DIR.format(size=encoder.image_size, pool_grid=encoder.pool_grid)
    return ImageFeatureCache.build(task, paths, os.path.join(data_dir, folder), log=log)


def fit_widths(records, preprocessor, pad_widths, log=print):
    """Records whose text fits the widest of ``pad_widths`` (one XLA compilation of the
    135M LM's training step per width costs 1.5-3.5 min on 2 cores, so a stage uses one or
    two widths); the rest are left out and counted per category, never silently."""
    from vit_tf.data.pipeline import text_lengths

    widest = max(int(w) for w in pad_widths.split(","))
    lengths = text_lengths(preprocessor, records)
    kept = [r for r, n in zip(records, lengths) if n <= widest]
    left_out = {}
    for r, n in zip(records, lengths):
        if n > widest:
            left_out[r["category"]] = left_out.get(r["category"], 0) + 1
    if not kept:
        from vit_tf.config import ConfigError

        raise ConfigError(f"data.pad_widths={pad_widths}: no record fits {widest} text tokens")
    if left_out:
        log(f"left out {sum(left_out.values())} records longer than {widest} text tokens "
            f"(data.pad_widths={pad_widths}): {left_out}")
    return kept, left_out


def text_chat_records(path, count=None, seed=0, log=print):
    """The text-only chat examples of ``path`` (``lm-chat``'s file, ``read_text_chat``):
    all of them once, or ``count``: a seeded order of the file, cycled when ``count`` is larger
    (each repeat gets the id suffix ``~k``, and the log says how many times it was used)."""
    import numpy as np

    from vit_tf.data.text_chat import read_text_chat

    records = read_text_chat(path)
    if count is None or count == len(records):
        return records
    order = np.random.default_rng(seed).permutation(len(records))
    chosen = []
    for i in range(count):
        record, k = records[int(order[i % len(records)])], i // len(records)
        chosen.append(record if not k else {**record, "id": f"{record['id']}~{k}"})
    log(f"text-only chat: {count} examples from the {len(records)} of {path} "
        f"(each used {count / len(records):.2f} times)")
    return chosen


def run_stage(config, data_dir, out, *, init=None, label, max_per_category=0, minutes=None,
              text_records=(), balance_presence=False, pair_presence=False, log=print):
    """Train one stage on cached features and save the task as a preset in ``out``."""
    from vit_tf.runs import load_task
    from vit_tf.training.feature_training import fit_on_features, peak_memory_gib
    from vit_tf.training.lora import merge_lora

    if os.path.exists(os.path.join(out, "metadata.json")):
        raise FileExistsError(f"{out} already holds a preset; choose another --out")
    from vit_tf.training.precision import precision_copy, precision_policy

    start = time.perf_counter()
    with precision_policy(config.train.precision):   # mixed_bfloat16: AMX on CPU, or a GPU
        task = load_task(init) if init else new_task(config)
    # A preset computes in the precision it was saved in (float32): train in train.precision.
    task = precision_copy(task, config.train.precision)
    log(f"{label}: model ready in {time.perf_counter() - start:.0f} s (init: "
        f"{init or 'pretrained parts'})")
    records = read_split(data_dir, TRAIN_FILE, config.train.stage1.categories, max_per_category,
                         config.train.seed, balance_presence, pair_presence) + list(text_records)
    cache = feature_cache(task, data_dir, log)
    records, left_out = fit_widths(records, task.preprocessor, config.data.pad_widths, log)
    t = config.train
    summary = fit_on_features(
        task, records, cache, t, t.policy, t.lora, steps=t.steps_per_epoch,
        batch_size=config.data.batch_size, max_text_length=config.data.max_text_length,
        label=label, log=log, max_seconds=minutes * 60 if minutes else None,
        widths=[int(w) for w in config.data.pad_widths.split(",")])
    task = precision_copy(merge_lora(task), "float32")   # the preset computes in float32
    os.makedirs(out, exist_ok=True)
    save_config(config, os.path.join(out, "config.json"))
    task.save_to_preset(out, generate_config=config.generate,
                        extra_metadata={"experiment": config.name})
    summary.update(init=init, categories=config.train.stage1.categories or "all",
                   text_chat_examples=len(text_records),
                   left_out_longer_than_widest=left_out,
                   max_per_category=max_per_category, balance_presence=balance_presence,
                   pair_presence=pair_presence, minutes=minutes,
                   total_seconds=round(time.perf_counter() - start, 1),
                   peak_memory_gib=round(peak_memory_gib(), 2), config=to_dict(config))
    with open(os.path.join(out, "train_summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
    log(f"{label}: {summary['examples']} examples, {summary['steps']} steps in "
        f"{summary['seconds']} s (final loss {summary['final_loss']:.4f}); peak memory "
        f"{summary['peak_memory_gib']} GiB; preset {out}")
    return summary


def reference_answers(data_dir, preprocessor, jit_compile=True, log=print):
    """The original SmolLM2's greedy answers to the retention prompts (computed once per
    ``jit_compile``: the tuned models are compared with the original run the same way)."""
    from vit_tf.eval.lm_retention import PROMPTS, retention_answers
    from vit_tf.models.decoders.hub_lm import load_lm_backbone

    path = os.path.join(data_dir, REFERENCE_FILE)
    if os.path.exists(path):
        with open(path) as f:
            saved = json.load(f)
        if saved.get("prompts") == list(PROMPTS) and \
                saved.get("jit_compile", True) == jit_compile:
            return saved["answers"]
    backbone = load_lm_backbone("llama", get_config().model.decoder.preset)
    answers = retention_answers(backbone, preprocessor, jit_compile=jit_compile)
    with open(path, "w") as f:
        json.dump({"prompts": list(PROMPTS), "answers": answers, "jit_compile": jit_compile}, f,
                  indent=1)
    log(f"original LM's reference answers: {path}")
    return answers


def evaluate_all(task, data_dir, out, *, model_info=None, vqa_limit=120, jit_compile=True,
                 log=print):
    """Held-out captions, easy-VQA test (first ``vqa_limit`` questions) and LM retention, each a
    ``metrics.json`` under ``out/eval/<name>/``; returns {name: report}. ``jit_compile=False``
    skips XLA's compilation of each generation loop (a minute or more per prompt width for
    the 135M LM on 2 cores), for small evaluation sets."""
    from vit_tf.eval.evaluate import evaluate
    from vit_tf.eval.items import eval_set
    from vit_tf.eval.lm_retention import evaluate_retention

    g = get_config().generate
    reports = {}
    for name, limit in zip(EVAL_FILES, (None, vqa_limit)):
        start = time.perf_counter()
        evalset = eval_set(image_root=data_dir, preprocessor=task.preprocessor,
                           max_text_length=task.preprocessor.max_text_length,
                           data=os.path.join(data_dir, name), limit=limit, log=log)
        reports[name], _ = evaluate(task, evalset, os.path.join(out, "eval", evalset.name),
                                    batch_size=g.batch_size, max_new_tokens=g.max_new_tokens,
                                    jit_compile=jit_compile, model_info=model_info, log=log)
        log(f"{name}: {time.perf_counter() - start:.0f} s")
    start = time.perf_counter()
    reference = reference_answers(data_dir, task.preprocessor, jit_compile, log)
    reports["lm_retention"] = evaluate_retention(
        task.backbone if hasattr(task, "backbone") else task.decoder.backbone, task.preprocessor,
        reference, os.path.join(out, "eval", "lm_retention"), model_info=model_info,
        jit_compile=jit_compile, log=log)
    log(f"lm_retention: {time.perf_counter() - start:.0f} s")
    return reports


def stage_main(get_stage_config, label, argv=None, needs_init=False, max_per_category=0):
    """The command line of a stage file: ``--data DIR --out RUN [--init RUN] [--minutes M]
    [--set k=v ...] [--eval]`` (``--set train.steps_per_epoch=N``: the most steps)."""
    p = argparse.ArgumentParser(prog=f"python -m vit_tf.experiments.{label}")
    p.add_argument("--data", required=True, help="the folder `vit-tf data real-images` wrote")
    p.add_argument("--out", required=True)
    p.add_argument("--init", required=needs_init, help="the preset to start from (stage 1's)")
    p.add_argument("--set", dest="overrides", action="append", default=[])
    p.add_argument("--eval", action="store_true", help="evaluate the result afterwards")
    p.add_argument("--minutes", type=float, default=None,
                   help="stop training after this many minutes (compilation excluded)")
    p.add_argument("--max-per-category", type=int, default=max_per_category)
    p.add_argument("--text-chat", default=None,
                   help="a text-only chat file (`smollm2_vision lm-chat`) mixed into the stage: "
                        "LLaVA-1.5's text-only conversations, here the original LM's answers")
    p.add_argument("--text-chat-examples", type=int, default=None,
                   help="how many text-only examples (default: the file's, once; more cycle it)")
    p.add_argument("--balance-presence", action="store_true",
                   help="easy-VQA's sample: as many yes/no questions about a present colour or "
                        "shape as about an absent one (with --max-per-category)")
    p.add_argument("--pair-presence", action="store_true",
                   help="easy-VQA's sample: each yes/no question with its complement (the named "
                        "colour or shape swapped, the answer flipped; with --max-per-category)")
    args = p.parse_args(argv)
    if args.balance_presence and not args.max_per_category:
        p.error("--balance-presence needs --max-per-category N")
    if args.pair_presence and not args.max_per_category:
        p.error("--pair-presence needs --max-per-category N")
    config = apply_overrides(get_stage_config(), args.overrides)
    if args.text_chat_examples is not None and not args.text_chat:
        p.error("--text-chat-examples needs --text-chat FILE")
    text_records = (text_chat_records(args.text_chat, args.text_chat_examples,
                                      config.train.seed) if args.text_chat else ())
    run_stage(config, args.data, args.out, init=args.init, label=label,
              max_per_category=args.max_per_category, minutes=args.minutes,
              text_records=text_records, balance_presence=args.balance_presence,
              pair_presence=args.pair_presence)
    if args.eval:
        eval_main(["--data", args.data, "--model", args.out])


def eval_main(argv=None):
    from vit_tf.eval.items import sha256_file
    from vit_tf.runs import load_task

    p = argparse.ArgumentParser(prog="python -m vit_tf.experiments.smollm2_vision eval")
    p.add_argument("--data", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--vqa-limit", type=int, default=120)
    p.add_argument("--no-xla", action="store_true", help="generate without XLA compilation")
    args = p.parse_args(argv)
    task = load_task(args.model)
    weights = os.path.join(args.model, "task.weights.h5")
    evaluate_all(task, args.data, args.model, vqa_limit=args.vqa_limit,
                 jit_compile=not args.no_xla,
                 model_info={"run": os.path.abspath(args.model), "file": weights,
                             "sha256": sha256_file(weights)})


def presence(task, data_dir, out=None, *, limit=400, log=print):
    """Does the model see what easy-VQA's yes/no questions name? (``vit_tf.eval.yes_no``)

    The first ``limit`` yes/no questions of the easy-VQA test file: the margin
    log P(yes) - log P(no) of the first answer token, its accuracy and its AUC overall and
    within the positive and the negated form (there the answer depends only on whether the
    named colour or shape is in the image). Written to ``out/eval/presence/metrics.json``."""
    import numpy as np
    from PIL import Image

    from vit_tf.data.sources.easy_vqa import asks_about_present, is_negated
    from vit_tf.eval.yes_no import presence_report, yes_no_margins

    with open(os.path.join(data_dir, EVAL_FILES[1]), encoding="utf-8") as f:
        records = [r for r in json.load(f) if r["conversations"][1]["value"] in ("yes", "no")]
    records = records[:limit]
    questions, answers = zip(*map(_question, records))
    images = [np.asarray(Image.open(os.path.join(data_dir, r["image"])).convert("RGB"))
              for r in records]
    margins = yes_no_margins(task, images, questions)
    report = presence_report(answers, margins,
                             [asks_about_present(q, a) for q, a in zip(questions, answers)],
                             [is_negated(q) for q in questions])
    def fmt(value):
        return "-" if value is None else f"{value:.3f}"

    for name, row in report.items():
        log(f"{name:14s} n {row['n']:4d}  accuracy {fmt(row['accuracy'])}  AUC {fmt(row['auc'])}"
            f"  about a present thing {fmt(row['accuracy_present'])} (n {row['n_present']})"
            f"  about an absent one {fmt(row['accuracy_absent'])}")
    if out:
        folder = os.path.join(out, "eval", "presence")
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, "metrics.json"), "w") as f:
            json.dump({"questions": len(records), "report": report}, f, indent=1)
    return report


def presence_main(argv=None):
    from vit_tf.runs import load_task

    p = argparse.ArgumentParser(prog="python -m vit_tf.experiments.smollm2_vision presence")
    p.add_argument("--data", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--limit", type=int, default=400, help="yes/no questions scored")
    args = p.parse_args(argv)
    presence(load_task(args.model), args.data, args.model, limit=args.limit)


def features_main(argv=None):
    p = argparse.ArgumentParser(prog="python -m vit_tf.experiments.smollm2_vision features")
    p.add_argument("--data", required=True)
    args = p.parse_args(argv)
    from vit_tf.training.feature_training import peak_memory_gib

    start = time.perf_counter()
    cache = feature_cache(new_task(get_config()), args.data)
    print(f"features: {len(cache.paths)} images, {cache.features.shape[1:]} tokens each, "
          f"{time.perf_counter() - start:.0f} s with model loading; peak memory "
          f"{peak_memory_gib():.2f} GiB")


def lm_chat(data_dir, out=None, *, count=400, seed=0, max_new_tokens=56, batch_size=8,
            jit_compile=True, log=print):
    """Self-distilled text-only chat data: ``count`` prompts of ``vit_tf.data.text_chat``
    (none overlapping the retention prompts) answered greedily by the original SmolLM2 with
    the retention eval's code (``TextLM``), written to ``out`` (default DATA/lm_chat.json).
    A file made from the same prompts and settings is reused. Returns the file's path."""
    from vit_tf.data.preset_tokenizer import preprocessor_for_config
    from vit_tf.data.text_chat import chat_prompts, chat_records, overlapping, read_text_chat
    from vit_tf.eval.lm_retention import PROMPTS
    from vit_tf.models.decoders.hub_lm import load_lm_backbone
    from vit_tf.models.text_lm import TextLM

    out = out or os.path.join(data_dir, LM_CHAT_FILE)
    config = get_config()
    prompts = chat_prompts(count, seed, exclude=PROMPTS)
    clashes = {p: overlapping(p, PROMPTS) for p in prompts if overlapping(p, PROMPTS)}
    if clashes:   # chat_prompts excludes them; a changed template list must not slip one in
        raise ValueError(f"prompts overlap the retention prompts: {clashes}")
    generator = {"lm": config.model.decoder.preset, "decoding": "greedy",
                 "max_new_tokens": max_new_tokens, "jit_compile": jit_compile, "seed": seed}
    if os.path.exists(out):
        old = read_text_chat(out)
        if [r["conversations"][0]["value"] for r in old] == prompts and \
                all(r.get("generator") == generator for r in old):
            log(f"lm-chat: {out} holds these {len(prompts)} prompts' answers, reused")
            return out
    start = time.perf_counter()
    backbone = load_lm_backbone("llama", config.model.decoder.preset)
    lm = TextLM(backbone, preprocessor_for_config(config), max_new_tokens, batch_size,
                jit_compile=jit_compile)
    answers, done = [], []
    for i in range(0, len(prompts), 64):
        chunk = prompts[i:i + 64]
        ids = lm.answer_ids([[{"from": "human", "value": p}] for p in chunk])
        answers += [lm.preprocessor.detokenize(a) for a in ids]
        done += [len(a) < max_new_tokens for a in ids]   # the stop token came first
        log(f"lm-chat: {len(answers)}/{len(prompts)} answered "
            f"({time.perf_counter() - start:.0f} s)")
    empty = [p for p, a in zip(prompts, answers) if not a.strip()]
    if empty:   # an empty answer is no conversation: counted and left out, never silently
        log(f"lm-chat: {len(empty)} empty answers left out: {empty[:3]}")
    kept = [(p, a, d) for p, a, d in zip(prompts, answers, done) if a.strip()]
    records = chat_records(*zip(*kept), generator)
    tmp = out + ".tmp"
    with open(tmp, "w") as f:
        json.dump(records, f, indent=1)
    os.replace(tmp, out)
    log(f"lm-chat: {len(records)} conversations ({sum(d for *_, d in kept)} ended by the LM, "
        f"the rest cut at {max_new_tokens} tokens) in {time.perf_counter() - start:.0f} s "
        f"with model loading: {out}")
    return out


def lm_chat_main(argv=None):
    p = argparse.ArgumentParser(prog="python -m vit_tf.experiments.smollm2_vision lm-chat")
    p.add_argument("--data", required=True)
    p.add_argument("--out", default=None, help=f"default DATA/{LM_CHAT_FILE}")
    p.add_argument("--count", type=int, default=400)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-new-tokens", type=int, default=56)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--no-xla", action="store_true")
    args = p.parse_args(argv)
    lm_chat(args.data, args.out, count=args.count, seed=args.seed,
            max_new_tokens=args.max_new_tokens, batch_size=args.batch_size,
            jit_compile=not args.no_xla)


def _policy(**parts):
    return PolicyConfig(**{"image_encoder": "frozen", **parts})


if __name__ == "__main__":
    command, rest = (sys.argv[1], sys.argv[2:]) if len(sys.argv) > 1 else ("", [])
    mains = {"features": features_main, "eval": eval_main, "lm-chat": lm_chat_main,
             "presence": presence_main}
    if command not in mains:
        sys.exit("usage: python -m vit_tf.experiments.smollm2_vision "
                 "features|eval|presence|lm-chat ...")
    mains[command](rest)
