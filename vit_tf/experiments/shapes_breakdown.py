"""Shapes-world diagnosis: exact match per question subtype and per number of objects in the scene.

The per-category table of ``vit-tf eval`` says *how much* a model gets right; this says *where* it
fails: colour vs shape vs size questions, yes vs no existence answers, and 1- vs 2- vs 3-object
scenes (binding a named object to its image tokens is what gets harder with more objects).
The object count is read from the scene's description record ("there are N objects").

Command:

    python -m vit_tf.experiments.shapes_breakdown --model RUN --data DATA/test.json \\
        --image-root DATA

Result (8-epoch probes on the quickstart data, see vit_tf/experiments/README.md): the conv stem with
BatchNorm raised shape questions from 46.8% to 62.0%; attribute questions on 1-object scenes
reached 96.8%, on 3-object scenes 55.7%.

With ``--predictions RUN/eval/predictions.jsonl`` it reads the answers ``vit-tf eval`` wrote
instead of generating them, and when the data folder holds the generator's ``shapes_world.json``
(seed and config) it rebuilds each scene exactly and adds two groups that say *why* a named
object is missed: position questions by how many other objects lie on the opposite side of the
asked axis (answering from the scene's overall layout instead of the named object fails exactly
there), and existence questions that name a size or not ("Is there a small red circle?" needs
colour, shape and size bound to one object):

    python -m vit_tf.experiments.shapes_breakdown --data DATA/test.json --image-root DATA \\
        --predictions RUN/eval/predictions.jsonl

Result (fifth round, vit_tf/experiments/README.md): with one position question per training scene,
position was 100% when no other object was on the opposite side, 72.5% with one and 50.0%
(chance) with two; three position questions per training scene lifted position to ~96%.

Relation questions get their own groups (``relation_groups``) once the scenes are rebuilt: the
form (left / right / above / below / closest / furthest) and the answer (yes / no / a name);
for left-of / above, the gap between the two centres along the asked axis and whether the two
objects lie in the same half of it (then no single object's side gives the answer away); for
closest / furthest, the winner's margin over the runner-up and which object a wrong answer
names; for every form, how many other objects share the colour or the shape of a named one.
``--model`` with ``--predictions`` keeps the eval answers and also asks the model the side of
each named object on the relation's axis (both axes for closest / furthest) alone: groups
``relation/alone=right|wrong|middle`` say whether the relation fails where the objects are
found. ``--write-val OUT.json`` writes the data with each relation record's category split by
form (``relation/left`` ...) for ``vit-tf train --val-data``: teacher-forced accuracy per form
over the epochs:

    python -m vit_tf.experiments.shapes_breakdown --data DATA/test.json --image-root DATA \
        --predictions RUN/eval/predictions.jsonl --model RUN
    python -m vit_tf.experiments.shapes_breakdown --data DATA/test.json --image-root DATA \
        --write-val DATA/test_by_form.json
"""

import argparse
import collections
import json
import math
import os
import re

from vit_tf.eval.metrics import normalize_answer
from vit_tf.runs import load_task

CATEGORIES = ("attribute", "position", "existence", "relation")


def object_counts(records):
    """image -> number of objects, from the description records."""
    counts = {}
    for r in records:
        if r.get("category") == "description":
            m = re.search(r"there (?:are|is) (\d+) object", r["conversations"][1]["value"])
            if m:
                counts[r["image"]] = int(m.group(1))
    return counts


def subtype(record):
    question = record["conversations"][0]["value"].lower()
    answer = record["conversations"][1]["value"].lower()
    if record["category"] == "attribute":
        for word, name in (("colo", "colour"), ("shape", "shape"), ("size", "size")):
            if word in question:
                return f"attribute/{name}"
        return "attribute/other"
    if record["category"] == "existence":
        return f"existence/{answer}"
    return record["category"]


def scenes_of(data_json, images):
    """image path -> Scene for ``images``, rebuilt from the ``shapes_world.json`` beside
    ``data_json``; {} when there is none (not a generated shapes world)."""
    from vit_tf.data.shapes import SPLITS, ShapesConfig, generate_scene, scene_rngs

    summary_path = os.path.join(os.path.dirname(data_json) or ".", "shapes_world.json")
    if not os.path.exists(summary_path):
        return {}
    summary = json.load(open(summary_path))
    config = ShapesConfig(**summary["config"])
    scenes = {}
    for split_index, split in enumerate(SPLITS):
        for index in range(summary[split]["scenes"]):
            image = f"images/{split}_{index:06d}.png"
            if image in images:
                scene_rng, _ = scene_rngs(summary["seed"], split_index, index)
                scenes[image] = generate_scene(scene_rng, config)
    return scenes


def geometry_group(record, scene):
    """``position/opposite=K`` (K other objects across the asked axis's middle) or
    ``existence/sized|plain``; None for other questions."""
    question = record["conversations"][0]["value"].lower()
    if record["category"] == "existence":
        sized = re.search(r"\b(small|large)\b", question) is not None
        return f"existence/{'sized' if sized else 'plain'}"
    if record["category"] != "position" or scene is None:
        return None
    named = re.search(r"the (\w+) (circle|square|triangle)", question)
    target = [o for o in scene.objects if (o.color, o.shape) == named.groups()]
    if len(target) != 1:
        return None
    axis = 0 if record["conversations"][1]["value"].lower() in ("left", "right") else 1
    half = scene.canvas_size / 2
    side = target[0].center[axis] < half
    opposite = sum((o.center[axis] < half) != side for o in scene.objects if o is not target[0])
    return f"position/opposite={opposite}"


def _relation_patterns():
    """[(form, compiled prompt pattern)] for every phrasing the shapes world asks relations in."""
    from vit_tf.data.shapes_questions import _RELATION_PROMPTS

    named = r"(the \w+ (?:circle|square|triangle))"
    return [(form, re.compile("^" + re.escape(template).replace(re.escape("{a}"), named)
                              .replace(re.escape("{b}"), named) + "$"))
            for form, templates in _RELATION_PROMPTS.items() for template in templates]


RELATION_PATTERNS = _relation_patterns()
GAP_BINS = (0.2, 0.35)
"""Bins (fraction of the canvas) of the gap between two centres, or of a closest / furthest
winner's margin over the runner-up; questions are asked from a gap of 0.1 on."""


def parse_relation(question):
    """"Is the red circle left of the blue square?" -> ("left", ("red circle", "blue square"));
    None when ``question`` is not one of the shapes world's relation phrasings."""
    question = question.split("\n")[-1].strip()
    for form, pattern in RELATION_PATTERNS:
        m = pattern.match(question)
        if m:
            return form, tuple(name[len("the "):] for name in m.groups())
    return None


def _find(scene, name):
    """The object of ``scene`` called ``name`` ("red circle"), or None."""
    found = [o for o in scene.objects if f"{o.color} {o.shape}" == name]
    return found[0] if len(found) == 1 else None


def _bin(value):
    edges = [f"{lo}-{hi}" for lo, hi in zip((0.1, *GAP_BINS), GAP_BINS)]
    for edge, label in zip(GAP_BINS, edges):
        if value < edge:
            return label
    return f">={GAP_BINS[-1]}"


def relation_groups(record, scene, prediction=None):
    """Group keys of a relation record (see the module docstring); [] for other records or a
    question that names no object of ``scene``."""
    if record.get("category") != "relation" or scene is None:
        return []
    parsed = parse_relation(record["conversations"][0]["value"])
    answer = normalize_answer(record["conversations"][1]["value"])
    if parsed is None:
        return []
    form, names = parsed
    objects = [_find(scene, n) for n in names]
    if any(o is None for o in objects):
        return []
    keys = [f"relation/form={form}",
            f"relation/answer={answer if answer in ('yes', 'no') else 'name'}"]
    named = list(objects)
    size = scene.canvas_size
    if form in ("closest", "furthest"):
        asked = objects[0]
        others = sorted((math.dist(o.center, asked.center), i)
                        for i, o in enumerate(scene.objects) if o is not asked)
        if form == "furthest":
            others = others[::-1]
        winner, runner_up = others[0], others[1]
        keys.append(f"relation/{form}-margin={_bin(abs(winner[0] - runner_up[0]) / size)}")
        named.append(scene.objects[winner[1]])
        if prediction is not None:
            said, other = normalize_answer(prediction), scene.objects[runner_up[1]]
            kind = ("answer" if said == answer else
                    "asked" if said == normalize_answer(f"the {names[0]}") else
                    "runner-up" if said == normalize_answer(f"the {other.color} {other.shape}")
                    else "absent" if re.fullmatch(r"(the )?\w+ (circle|square|triangle)", said)
                    else "malformed")
            keys.append(f"relation/{form}-said={kind}")
    else:
        axis = 0 if form in ("left", "right") else 1
        a, b = (o.center[axis] for o in objects)
        keys.append(f"relation/gap={_bin(abs(a - b) / size)}")
        keys.append(f"relation/halves={'same' if (a < size / 2) == (b < size / 2) else 'apart'}")
    shared = sum(any(o.color == n.color or o.shape == n.shape for n in named)
                 for o in scene.objects if all(o is not n for n in named))
    keys.append(f"relation/shared={shared}")
    return keys


def relation_probes(record, scene):
    """Side questions about each named object alone: [(prompt, true side)] on the relation's
    axis (both axes for closest / furthest) for objects clearly off the middle
    (``POSITION_MARGIN``); objects near the middle have no true side and are not asked."""
    from vit_tf.data.shapes_questions import POSITION_MARGIN

    parsed = parse_relation(record["conversations"][0]["value"])
    if record.get("category") != "relation" or scene is None or parsed is None:
        return []
    form, names = parsed
    objects = [_find(scene, n) for n in names]
    if form in ("closest", "furthest"):
        answer = record["conversations"][1]["value"][len("the "):]
        objects.append(_find(scene, answer))
    axes = (0, 1) if form in ("closest", "furthest") else (0 if form in ("left", "right") else 1,)
    half, margin = scene.canvas_size / 2, POSITION_MARGIN * scene.canvas_size
    probes = []
    for obj in filter(None, objects):
        for axis in axes:
            if abs(obj.center[axis] - half) < margin:
                continue
            side = ("left", "right") if axis == 0 else ("top", "bottom")
            where = "on the left or the right" if axis == 0 else "at the top or the bottom"
            probes.append((f"<image>\nIs the {obj.color} {obj.shape} {where}?",
                           side[obj.center[axis] >= half]))
    return probes


def probe_groups(args, records, scenes):
    """record id -> ``relation/alone=right|wrong|middle``: the model's answers to
    ``relation_probes`` (greedy, the run in ``args.model``)."""
    asked = [(r, prompt, truth) for r in records
             for prompt, truth in relation_probes(r, scenes.get(r["image"]))]
    answers = generated_answers(args, [{"image": r["image"], "conversations": [
        {"from": "human", "value": prompt}]} for r, prompt, _ in asked])
    verdict = {}
    for (r, _, truth), said in zip(asked, answers):
        ok = normalize_answer(said) == truth
        verdict[r["id"]] = verdict.get(r["id"], True) and ok
    return {r["id"]: "relation/alone=" + ("middle" if r["id"] not in verdict else
                                          "right" if verdict[r["id"]] else "wrong")
            for r in records if r.get("category") == "relation" and scenes.get(r["image"])}


def write_val(records, path):
    """``records`` with each relation record's category split by form (``relation/left``),
    as a LLaVA JSON for ``vit-tf train --val-data``."""
    out = []
    for r in records:
        parsed = parse_relation(r["conversations"][0]["value"]) if r.get(
            "category") == "relation" else None
        out.append({**r, "category": f"relation/{parsed[0]}"} if parsed else r)
    with open(path, "w") as f:
        json.dump(out, f, indent=1)
    return collections.Counter(r.get("category") for r in out)


def checkpoint_curves(run, data_json, image_root, out=None):
    """Teacher-forced answer accuracy (``AnswerAccuracy``: every answer token the argmax given
    the true history) of each ``RUN/checkpoints/epoch_*.keras`` on ``data_json``, relation
    records split by form: {epoch: {category: accuracy}}. The curve ``vit-tf train --val-data``
    logs, recovered from a finished run's checkpoints without training again."""
    import glob

    from vit_tf.config import load_config
    from vit_tf.data.pipeline import encode_records
    from vit_tf.data.prepare import prepare_records
    from vit_tf.training.callbacks import AnswerAccuracy

    config = load_config(os.path.join(run, "config.json")).data
    split = (out or os.path.join(run, "val_by_form.json"))
    write_val(json.load(open(data_json)), split)
    task = load_task(run)
    records, _, _ = prepare_records(split, image_root, max_text_length=config.max_text_length,
                                    preprocessor=task.preprocessor)
    examples = encode_records(records, task.preprocessor, config.max_text_length)
    callback = AnswerAccuracy(examples, [r.get("category") or "all" for r in records],
                              config.image_size)
    curves = {}
    for path in sorted(glob.glob(os.path.join(run, "checkpoints", "epoch_*.keras"))):
        callback.set_model(load_task(path))
        logs = {}
        callback.on_epoch_end(0, logs)
        epoch = int(re.search(r"epoch_(\d+)", path).group(1))
        curves[epoch] = {k.split("/", 1)[1] if "/" in k else "all": v for k, v in logs.items()}
    return curves


def print_curves(curves):
    columns = sorted({c for row in curves.values() for c in row}, key=lambda c: (c != "all", c))
    print("| epoch | " + " | ".join(columns) + " |\n|---" * (len(columns) + 1) + "|")
    for epoch, row in sorted(curves.items()):
        print(f"| {epoch} | " + " | ".join(f"{100 * row.get(c, float('nan')):.1f}"
                                         for c in columns) + " |")


def answer_prior(records, preprocessor):
    """What an image-blind model can reach, per family: {family: (majority %, prior nats per
    trained token)} and ``"all"``. Each answer turn's prompt with every colour, shape and size
    word masked is its context; the prior is the answer distribution within that context, its
    entropy the loss a blind model pays (over the trained tokens: the answers' tokens and their
    ``<|end|>``, as the training loss counts them). The training loss sitting at this line
    means the model has not yet used the image."""
    from vit_tf.data.shapes import PALETTE, SHAPES, SIZE_FRACTIONS

    words = re.compile(r"\b(" + "|".join([*PALETTE, *SHAPES, *SIZE_FRACTIONS]) + r")s?\b")
    turns = collections.defaultdict(collections.Counter)       # (family, context) -> answers
    for r in records:
        c = r["conversations"]
        for k in range(0, len(c) - 1, 2):
            turns[(r.get("category"), words.sub("#", c[k]["value"].lower()))][
                normalize_answer(c[k + 1]["value"])] += 1
    nats, hits, count = collections.Counter(), collections.Counter(), collections.Counter()
    for (family, _), answers in turns.items():
        total = sum(answers.values())
        nats[family] -= sum(n * math.log(n / total) for n in answers.values())
        hits[family] += max(answers.values())
        count[family] += total
    tokens = collections.Counter()
    for r, (_, trained) in zip(records, preprocessor.encode_conversations(
            [r["conversations"] for r in records])):
        tokens[r.get("category")] += int(trained.sum())
    out = {f: (100 * hits[f] / count[f], nats[f] / tokens[f]) for f in count}
    out["all"] = (100 * sum(hits.values()) / sum(count.values()),
                  sum(nats.values()) / sum(tokens.values()))
    return out


def generated_answers(args, records):
    task = load_task(args.model)   # a run or preset folder: model + its preprocessor
    generator = task.generator(max_new_tokens=8)
    answers = []
    for i in range(0, len(records), 64):  # image files: the preprocessor decodes and resizes
        chunk = records[i:i + 64]
        answers += generator.generate([f"{args.image_root}/{r['image']}" for r in chunk],
                                      [r["conversations"][:1] for r in chunk])
    return answers


def predicted_answers(path, records):
    """The first-turn answers ``vit-tf eval`` wrote, in the order of ``records``."""
    by_id = {}
    for line in open(path):
        item = json.loads(line)
        if item.get("turn", 0) == 0:
            by_id[item["record_id"]] = item["prediction"]
    missing = [r["id"] for r in records if r["id"] not in by_id]
    if missing:
        raise SystemExit(f"{path}: no prediction for {len(missing)} record(s), e.g. {missing[0]}")
    return [by_id[r["id"]] for r in records]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="run folder to generate answers with (with "
                        "--predictions: only the relation probes)")
    parser.add_argument("--predictions", help="predictions.jsonl of vit-tf eval")
    parser.add_argument("--data", required=True)
    parser.add_argument("--image-root", required=True)
    parser.add_argument("--write-val", metavar="OUT.json", help="write --data with relation "
                        "categories split by form (for vit-tf train --val-data) and stop")
    parser.add_argument("--checkpoints", metavar="RUN", help="teacher-forced accuracy of each "
                        "of RUN's epoch checkpoints on --data, relations by form, and stop")
    parser.add_argument("--prior", action="store_true", help="the answer prior of --data "
                        "(majority %% and blind loss per trained token, with --model's "
                        "tokenizer) and stop")
    args = parser.parse_args(argv)
    if args.prior:
        if not args.model:
            parser.error("--prior needs --model (its tokenizer counts the trained tokens)")
        from vit_tf.data.preprocessor import VisionLanguagePreprocessor

        prior = answer_prior(json.load(open(args.data)),
                             VisionLanguagePreprocessor.from_preset(args.model))
        print("| family | majority % | prior loss (nats / trained token) |\n|---|---|---|")
        for family, (majority, loss) in sorted(prior.items(), key=lambda kv: kv[0] == "all"):
            print(f"| {family} | {majority:.1f} | {loss:.3f} |")
        return
    if args.checkpoints:
        print_curves(checkpoint_curves(args.checkpoints, args.data, args.image_root,
                                       args.write_val))
        return
    records = json.load(open(args.data))
    if args.write_val:
        for category, n in sorted(write_val(records, args.write_val).items()):
            print(f"{category}: {n}")
        return
    if not (args.model or args.predictions):
        parser.error("give --model, --predictions or both")
    counts = object_counts(records)
    records = [r for r in records if r.get("category") in CATEGORIES]
    scenes = scenes_of(args.data, {r["image"] for r in records})
    for image, scene in scenes.items():   # question-only data has no descriptions to count
        counts.setdefault(image, len(scene.objects))
    answers = (predicted_answers(args.predictions, records) if args.predictions
               else generated_answers(args, records))
    alone = probe_groups(args, records, scenes) if args.model and args.predictions else {}
    stats = collections.defaultdict(lambda: [0, 0])
    for record, answer in zip(records, answers):
        ok = normalize_answer(answer) == normalize_answer(record["conversations"][1]["value"])
        scene = scenes.get(record["image"])
        keys = [subtype(record), f"{record['category']}/objects={counts.get(record['image'])}",
                geometry_group(record, scene), *relation_groups(record, scene, answer),
                alone.get(record["id"])]
        for key in filter(None, keys):
            stats[key][0] += ok
            stats[key][1] += 1
    print("| group | exact match | n |\n|---|---|---|")
    for key in sorted(stats):
        print(f"| {key} | {100 * stats[key][0] / stats[key][1]:.1f} | {stats[key][1]} |")


if __name__ == "__main__":
    main()
