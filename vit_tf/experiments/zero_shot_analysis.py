"""Why a prompt ensemble (one mean text embedding per class) can miss where the best full
description does not: the similarities of held-out single-object scenes to every caption
"a {size} {color} {shape}.", by which attributes the caption gets right.

For each held-out single-object scene and each of the 36 captions this prints, grouped by the
attributes the caption matches: the mean cosine similarity, the model's own SigLIP
probability sigmoid(s cos + b), and how often the caption's shape-only signal is right (for
a pair of captions that differ only in shape, the true shape's caption scores higher). Then the
shape / colour / size accuracy of each way of scoring a class from its 12 captions:
``mean_embedding`` (CLIP's prompt ensembling: the normalised mean embedding), ``mean_cosine``
(the same without the normalisation), ``best`` (the joint reading: the best caption),
``marginal`` (the sum of the class's caption probabilities at the model's scale and bias, the
probability of the class under the model), and the mean over the captions whose other
attributes are right / wrong.

Command:

    python -m vit_tf.experiments.zero_shot_analysis --model runs/siglip_shapes \
        --shapes data/shapes_eval

Result (2026-12-06, on the ``contrastive_shapes`` run: 24 epochs, 265 s of training, the same
retrieval and zero-shot numbers as the README's; 335 single-object scenes of 1000 held-out):

    caption right on (colour shape size) | pairs | cosine | SigLIP probability
      + + +   335  +0.764  0.5841
      + + -   335  +0.077  0.0003
      + - +   670  +0.296  0.0176
      - + +  1675  +0.324  0.0067
      - + -  1675  -0.278  0.0000      (others near 0 or below)
    shape pair wins: context right 100.0%, half right 88.0%, wrong 27.5%
    shape: mean_embedding 73.7%, mean_cosine 74.9%, best 100.0%, marginal 100.0%,
           mean over captions with the other attributes right 100.0%, wrong 0.9%
    colour: every way 99.7-100.0%; size: ensembles 99.1%, best / marginal 100.0%

Why the ensemble loses shape: the embedding is joint, not a sum of attribute parts. With the
right colour and size, the true shape's caption always wins (100%); with a wrong colour and size
it wins only 27.5% of the time, so of a class's 12 captions the 11 in a wrong context mostly
point away from the true shape, and their mean follows them (73.7%). The class mean embeddings
also differ in length (square 0.604 against circle 0.511 and triangle 0.514: the square's
captions agree more), which favours square after normalisation. Scoring a class by the model's
own probability (``marginal``: the sum of its captions' sigmoid(s cos + b)) reads the joint
embedding correctly (100.0%): the right-context caption dominates the sum.
"""

import argparse
import itertools
import json

import numpy as np

from vit_tf.eval.contrastive import ATTRIBUTES, _load_images, world_scenes
from vit_tf.models.contrastive import DualEncoder
from vit_tf.models.contrastive.losses import logit_scale_value

TEMPLATE = "a {size} {color} {shape}."


def caption_similarities(model, shapes_dir, split="test"):
    """(single-object scenes' truth [(color, shape, size)], captions [(color, shape, size)],
    cosine similarities (n_scenes, n_captions))."""
    scenes, config = world_scenes(shapes_dir, split)
    single = [(p, s.objects[0]) for p, s in scenes if len(s.objects) == 1]
    truth = [tuple(getattr(o, a) for a in ATTRIBUTES) for _, o in single]
    captions = list(itertools.product(config.colors, config.shapes, config.sizes))
    x = model.encode_images(_load_images([p for p, _ in single], model.image_encoder.image_size))
    e = model.encode_texts([TEMPLATE.format(color=c, shape=s, size=z) for c, s, z in captions])
    return truth, captions, x, e


def analyse(model, shapes_dir):
    truth, captions, x, e = caption_similarities(model, shapes_dir)
    scale = float(logit_scale_value(model.logit_scale))
    bias = float(model.logit_bias.numpy())
    cos = x @ e.T                                                     # (n, 36)
    prob = 1.0 / (1.0 + np.exp(-(scale * cos + bias)))
    match = np.array([[[t[k] == c[k] for k in range(3)] for c in captions] for t in truth])
    out = {"scenes": len(truth), "scale": scale, "bias": bias, "patterns": [], "accuracy": {}}
    for pattern in itertools.product((True, False), repeat=3):       # (color, shape, size) right?
        where = np.all(match == np.array(pattern), axis=-1)            # (n, 36)
        out["patterns"].append({
            "color": pattern[0], "shape": pattern[1], "size": pattern[2],
            "pairs": int(where.sum()), "cosine": float(cos[where].mean()),
            "cosine_sd": float(cos[where].std()), "probability": float(prob[where].mean())})
    for a, attr in enumerate(ATTRIBUTES):
        classes = sorted({c[a] for c in captions})
        others = [k for k in range(3) if k != a]
        scores = {name: np.zeros((len(truth), len(classes))) for name in
                  ("mean_embedding", "mean_cosine", "best", "marginal",
                   "mean_others_right", "mean_others_wrong")}
        norms = {}
        for j, value in enumerate(classes):
            cols = [i for i, c in enumerate(captions) if c[a] == value]
            mean = e[cols].mean(axis=0)
            norms[value] = float(np.linalg.norm(mean))
            scores["mean_embedding"][:, j] = x @ mean / norms[value]
            scores["mean_cosine"][:, j] = cos[:, cols].mean(axis=1)
            scores["best"][:, j] = cos[:, cols].max(axis=1)
            scores["marginal"][:, j] = prob[:, cols].sum(axis=1)
            # the captions of this class whose other two attributes are the image's / are not
            right = np.array([[all(t[k] == captions[i][k] for k in others) for i in cols]
                              for t in truth])                                  # (n, 12)
            wrong = np.array([[not any(t[k] == captions[i][k] for k in others) for i in cols]
                              for t in truth])
            scores["mean_others_right"][:, j] = (cos[:, cols] * right).sum(1) / right.sum(1)
            scores["mean_others_wrong"][:, j] = (cos[:, cols] * wrong).sum(1) / wrong.sum(1)
        labels = np.array([classes.index(t[a]) for t in truth])
        out["accuracy"][attr] = {name: float(np.mean(np.argmax(s, 1) == labels))
                                 for name, s in scores.items()}
        out["accuracy"][attr]["class_norms"] = norms
    # Shape signal per caption context: for two captions equal but for the shape, how often
    # the one with the image's shape scores higher, by whether the context is the image's.
    shape_pairs = {"context_right": [], "context_half": [], "context_wrong": []}
    index = {c: i for i, c in enumerate(captions)}
    for n, t in enumerate(truth):
        for c in captions:
            if c[1] != t[1]:
                continue
            rights = (c[0] == t[0]) + (c[2] == t[2])
            key = ("context_wrong", "context_half", "context_right")[rights]
            for s in {c2[1] for c2 in captions} - {t[1]}:
                other = index[(c[0], s, c[2])]
                shape_pairs[key].append(cos[n, index[c]] > cos[n, other])
    out["shape_pair_wins"] = {k: float(np.mean(v)) for k, v in shape_pairs.items()}
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, help="a vit-tf pretrain folder")
    parser.add_argument("--shapes", required=True, help="a shapes world folder (held-out scenes)")
    parser.add_argument("--out", default=None, help="write the numbers as JSON")
    args = parser.parse_args(argv)
    out = analyse(DualEncoder.from_preset(args.model), args.shapes)
    print(f"{out['scenes']} single-object held-out scenes; scale {out['scale']:.1f}, "
          f"bias {out['bias']:.2f}")
    print("caption right on (colour shape size) | pairs | cosine (sd) | SigLIP probability")
    for p in out["patterns"]:
        flags = " ".join("+" if p[k] else "-" for k in ("color", "shape", "size"))
        print(f"  {flags:24s} | {p['pairs']:6d} | {p['cosine']:+.3f} ({p['cosine_sd']:.3f}) | "
              f"{p['probability']:.4f}")
    print("shape pair wins (true-shape caption above a wrong-shape one, same context): "
          + ", ".join(f"{k} {v:.1%}" for k, v in out["shape_pair_wins"].items()))
    for attr, acc in out["accuracy"].items():
        norms = ", ".join(f"{k} {v:.3f}" for k, v in acc["class_norms"].items())
        print(f"{attr}: " + ", ".join(f"{k} {v:.1%}" for k, v in acc.items()
                                       if k != "class_norms") + f"; |mean| {norms}")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
