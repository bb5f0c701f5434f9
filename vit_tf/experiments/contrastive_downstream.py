"""Downstream effect of contrastive pretraining: the VLM from scratch vs from the pretrained
image encoder (``model.encoder.preset``), at equal total wall time (pretraining seconds count).

Both arms train the default experiment; the contrastive arm adds
``--set model.encoder.preset=PRETRAIN/image_encoder`` and fewer epochs (the pretraining's share
of the budget). This script (not an experiment: it has no ``get_config``) reads finished runs
into the comparison table:

    python -m vit_tf.experiments.contrastive_downstream --train-data DATA/train.json \\
        ARM=RUN[,PRETRAIN] ...

per arm: pretraining + VLM seconds, the epoch training losses against the answer prior (the
loss of a model that sees only the question: the entropy of the answer given the question
text, per trained token), the first epoch whose loss is below 0.9 x the prior, and the
per-category exact match of ``RUN/eval/metrics.json``.

Commands (2026-12-06; the quickstart's data in data/shapes, the question-only world in data/qo
= ``vit-tf data shapes --out data/qo --train 4000 --test 200 --seed 0 --train-questions
position=4,attribute=2,existence=3 --no-captions``):

    # quickstart, contrastive arm (the scratch arm is `vit-tf quickstart`, 13 epochs)
    vit-tf pretrain --experiment contrastive_shapes --data data/shapes/train.json \
        --image-root data/shapes --val-data data/shapes/test.json --out runs/qs_con/pretrain \
        --set pretrain.epochs=8
    vit-tf train --data data/shapes/train.json --image-root data/shapes --out runs/qs_con/run \
        --set model.encoder.preset=runs/qs_con/pretrain/image_encoder --set train.epochs=10
    # question-only: scratch 7 epochs; contrastive 2 pretraining epochs on the QA texts + 5
    vit-tf train --data data/qo/train.json --image-root data/qo --out runs/qo_scratch \
        --val-data data/qo/test.json --set train.epochs=7
    vit-tf pretrain --experiment contrastive_shapes --data data/qo/train.json --image-root data/qo \
        --val-data data/qo/test.json --out runs/qo_con/pretrain --set pretrain.texts=questions \
        --set pretrain.epochs=2
    vit-tf train --data data/qo/train.json --image-root data/qo --out runs/qo_con/run \
        --val-data data/qo/test.json --set model.encoder.preset=runs/qo_con/pretrain/image_encoder \
        --set train.epochs=5
    # each: vit-tf eval --model RUN --benchmark shapes --image-root DATA --out RUN/eval

Result reached (overall short-answer exact match): quickstart, scratch 86.7 (13 epochs, 1377 s)
vs contrastive 81.1 (214 s + 10 epochs, 832 s); question-only, scratch 62.5 (7 epochs, 684 s)
vs contrastive 61.1 (246 s + 5 epochs, 411 s), attribute 52.5 -> 65.5; both arms leave the
answer prior (0.438) in epoch 3. Tables: README, "Cross-modal pretraining (CLIP / SigLIP)".
"""

import argparse
import collections
import json
import math
import os

LEAVE_FRACTION = 0.9


def answer_prior(train_json, preprocessor):
    """Mean loss per trained token of the best question-only predictor: per gpt turn,
    -log p(answer | the human turn just before it), p counted over ``train_json``; tokens:
    the answer's plus its end marker (what the VLM's loss averages over)."""
    with open(train_json) as f:
        records = json.load(f)
    pairs = []
    for record in records:
        turns = record["conversations"]
        for human, gpt in zip(turns[::2], turns[1::2]):
            question = human["value"].replace("<image>", "").strip().lower()
            pairs.append((question, gpt["value"].strip().lower()))
    counts = collections.Counter(pairs)
    totals = collections.Counter(q for q, _ in pairs)
    answers = sorted({a for _, a in pairs})
    encoded = preprocessor.encode_conversations(
        [[{"from": "human", "value": "x"}, {"from": "gpt", "value": a}] for a in answers])
    trained = {a: int(mask.sum()) for a, (_, mask) in zip(answers, encoded)}  # answer + <|end|>
    nats = sum(-math.log(counts[(q, a)] / totals[q]) for q, a in pairs)
    tokens = sum(trained[a] for _, a in pairs)
    return nats / tokens


def arm_row(run, pretrain=None, prior=None):
    with open(os.path.join(run, "train_summary.json")) as f:
        summary = json.load(f)
    losses = summary["history"]["loss"]
    row = {"run": run, "epochs": len(losses), "vlm_seconds": summary["seconds"],
           "pretrain_seconds": 0.0, "losses": [round(v, 4) for v in losses]}
    if pretrain:
        with open(os.path.join(pretrain, "pretrain_summary.json")) as f:
            row["pretrain_seconds"] = json.load(f)["seconds"]
    row["total_seconds"] = round(row["vlm_seconds"] + row["pretrain_seconds"], 1)
    if prior is not None:
        below = [i + 1 for i, v in enumerate(losses) if v < LEAVE_FRACTION * prior]
        row["epoch_left_prior"] = below[0] if below else None
    metrics = os.path.join(run, "eval", "metrics.json")
    if os.path.exists(metrics):
        with open(metrics) as f:
            m = json.load(f)
        row["exact"] = {k: round(100 * v["exact_match"], 1) for k, v in m["categories"].items()}
        row["exact"]["overall"] = round(100 * m["overall"]["exact_match"], 1)
    return row


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("arms", nargs="+", help="NAME=RUN or NAME=RUN,PRETRAIN_FOLDER")
    parser.add_argument("--train-data", default=None, help="the VLM's training JSON (the prior)")
    args = parser.parse_args(argv)
    from vit_tf.data.preprocessor import VisionLanguagePreprocessor

    rows = {}
    for arm in args.arms:
        name, _, paths = arm.partition("=")
        run, _, pretrain = paths.partition(",")
        prior = None
        if args.train_data:
            prior = answer_prior(args.train_data, VisionLanguagePreprocessor.from_preset(run))
        rows[name] = arm_row(run, pretrain or None, prior)
        rows[name]["answer_prior"] = None if prior is None else round(prior, 4)
    print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
