"""Evaluation of a contrastively pretrained encoder alone: retrieval, zero-shot, linear probe.

* **Retrieval** on held-out pairs (``retrieval``): image->text and text->image R@1 / R@5, per
  text kind (caption, description, questions). A text counts as a hit for every image it
  describes (its own, and any image whose text is identical: ``models.contrastive.retrieval``).
* **Zero-shot classification** by prompts (``shapes_zero_shot``, ``easy_vqa_zero_shot``), two
  ways (``class_scores``): ``ensemble``, each class the normalised mean embedding of its prompts
  (CLIP's prompt ensembling; in the shapes world over the attributes not asked, "a {size}
  {color} {shape}." for every size and shape when asking the colour), and ``joint``, each class
  scored by its best prompt (the image is matched against every full description and the
  asked attribute read off the winner); an image takes the best-scored class. Shapes world:
  colour / shape / size of single-object held-out scenes, and for all scenes whether the top
  colour / shape is present. Ground truth is regenerated from ``shapes_world.json`` (seed and
  config), so question-only worlds have it too.
* **Linear probe** (``linear_probe``): a ridge classifier (closed form, features standardised)
  on the pooled image features of single-object training scenes, scored on the held-out ones;
  with the same encoder at random initialisation as the reference.

Example:
    >>> model = DualEncoder.from_preset("runs/clip")
    >>> report = evaluate_encoder(model, shapes_dir="data/shapes", prompts="caption")
    >>> report["zero_shot"]["single_object"]["color"]
"""

import json
import os

import numpy as np

from vit_tf.data.pairs import build_pairs, decode_images
from vit_tf.data.shapes import generate_scene, image_path, scene_rngs
from vit_tf.data.shapes_scene import ShapesConfig
from vit_tf.data.sources.easy_vqa import COLORS as EVQA_COLORS
from vit_tf.data.sources.easy_vqa import SHAPES as EVQA_SHAPES
from vit_tf.data.sources.readers import read_data_argument
from vit_tf.models.contrastive.retrieval import positives_from_ids, recall_at_k

PROMPTS = {
    # the shapes world's caption phrasing
    "caption": ("a {size} {color} {shape}.",),
    # its question-answer phrasing (for an encoder pretrained on question-only data)
    "question": ("is there a {size} {color} {shape} in the image? yes",
                 "is there a {color} {shape} in the image? yes",
                 "can you see a {color} {shape} in this picture? yes"),
}
EASY_VQA_PROMPTS = {
    "color": ("what color is the shape? {value}", "what is the color of the shape? {value}"),
    "shape": ("what shape is in the image? {value}", "what shape is present? {value}"),
}
ATTRIBUTES = ("color", "shape", "size")


def _load_images(paths, image_size):
    return decode_images(list(paths), image_size)


def retrieval(model, data, image_root, texts="caption,description,questions",
              data_format="llava", max_images=1000):
    """{kind: {"pairs", "images", "i2t_r1", ...}} on the held-out pairs of ``data``."""
    records = read_data_argument(data_format, data, image_root).records
    pairs = build_pairs(records, texts, model.image_encoder.image_size)
    x_all = model.encode_images(pairs.images[:max_images])
    out = {}
    kinds = {c if c in texts.split(",") else "questions" for c in pairs.categories}
    for kind in sorted(kinds):
        keep = [i for i, c in enumerate(pairs.categories)
                if (c if c in texts.split(",") else "questions") == kind
                and pairs.image_index[i] < max_images]
        if not keep:
            continue
        sub = pairs.subset(keep)
        # Images of this kind's pairs, once each; rows = images, columns = texts.
        images = np.unique(sub.image_index)
        row = {img: r for r, img in enumerate(images)}
        y = model.encode_texts(sub.texts)
        similarity = x_all[images] @ y.T                          # (n_images, n_texts)
        # A text describes an image when it is that image's text, or identical to one of its.
        own = positives_from_ids(sub.image_index, sub.texts)    # (n_texts, n_texts)
        positives = np.zeros((len(images), len(sub)), bool)
        for j, img in enumerate(sub.image_index):
            positives[row[img]] |= own[j]
        out[kind] = {"images": int(len(images)), "texts": len(sub),
                     **recall_at_k(similarity, positives, (1, 5))}
    return out


def _world(shapes_dir):
    path = os.path.join(shapes_dir, "shapes_world.json")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: not a shapes world folder (vit-tf data shapes writes it)")
    with open(path) as f:
        summary = json.load(f)
    config = ShapesConfig(**{k: tuple(v) if isinstance(v, list) else v
                             for k, v in summary["config"].items()})
    return summary, config


def world_scenes(shapes_dir, split):
    """[(image path, Scene)] of a written split, regenerated from its seed and config."""
    summary, config = _world(shapes_dir)
    split_index = ("train", "test").index(split)
    scenes = []
    for index in range(summary[split]["scenes"]):
        scene_rng, _ = scene_rngs(summary["seed"], split_index, index)
        scenes.append((os.path.join(shapes_dir, image_path(split, index)),
                       generate_scene(scene_rng, config)))
    return scenes, config


def class_scores(model, x, templates, classes, fill):
    """Two zero-shot scores of images ``x`` (n, d) for each class, (n, n_classes) each:
    ``ensemble``: similarity to the normalised mean of the class's prompt embeddings (CLIP's
    prompt ensembling); ``joint``: the best similarity over the class's prompts (the image is
    classified among every full description, e.g. all 36 "a {size} {color} {shape}.", and the
    asked attribute read off the winner). ``fill(value)`` lists the format dicts of a class
    (e.g. every size and shape with that colour)."""
    ensemble, joint = [], []
    for value in classes:
        e = model.encode_texts([t.format(**d) for d in fill(value) for t in templates])
        mean = e.mean(axis=0)
        ensemble.append(x @ (mean / np.linalg.norm(mean)))
        joint.append((x @ e.T).max(axis=1))
    return np.stack(ensemble, axis=1), np.stack(joint, axis=1)


def shapes_zero_shot(model, shapes_dir, prompts="caption", split="test", limit=None):
    """Zero-shot colour / shape / size on the held-out scenes of a shapes world."""
    scenes, config = world_scenes(shapes_dir, split)
    scenes = scenes[:limit] if limit else scenes
    images = _load_images([p for p, _ in scenes], model.image_encoder.image_size)
    x = model.encode_images(images)
    values = {"color": config.colors, "shape": config.shapes, "size": config.sizes}
    templates = PROMPTS[prompts]
    single = [i for i, (_, s) in enumerate(scenes) if len(s.objects) == 1]
    out = {"prompts": list(templates), "scenes": len(scenes), "single_object_scenes": len(single)}
    for method in ("ensemble", "joint"):
        out[method] = {"single_object": {}, "present": {}}
    for attr in ATTRIBUTES:
        def fill(value, attr=attr):
            others = [a for a in ATTRIBUTES if a != attr]
            return [{attr: value, others[0]: u, others[1]: v}
                    for u in values[others[0]] for v in values[others[1]]]

        for method, scores in zip(("ensemble", "joint"),
                                  class_scores(model, x, templates, values[attr], fill)):
            names = [values[attr][k] for k in np.argmax(scores, axis=1)]     # (scenes,)
            hits = [names[i] == getattr(scenes[i][1].objects[0], attr) for i in single]
            out[method]["single_object"][attr] = float(np.mean(hits)) if hits else None
            present = [names[i] in {getattr(o, attr) for o in s.objects}
                       for i, (_, s) in enumerate(scenes)]
            out[method]["present"][attr] = float(np.mean(present))
        out[f"{attr}_chance"] = 1.0 / len(values[attr])
    return out


def easy_vqa_zero_shot(model, easy_vqa_dir, split="test"):
    """Zero-shot colour (8) and shape (3) on easy-VQA's held-out images."""
    path = os.path.join(easy_vqa_dir, "easy_vqa.json")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: not an easy-VQA folder (vit-tf data easy-vqa writes it)")
    with open(path) as f:
        truth = json.load(f)["images"]
    images = sorted(k for k in truth if os.path.basename(k).startswith(split + "_"))
    pixels = _load_images([os.path.join(easy_vqa_dir, k) for k in images],
                          model.image_encoder.image_size)
    x = model.encode_images(pixels)
    out = {"images": len(images)}
    for attr, classes in (("color", EVQA_COLORS), ("shape", EVQA_SHAPES)):
        scores, _ = class_scores(model, x, EASY_VQA_PROMPTS[attr], classes,
                                 lambda value: [{"value": value}])
        predicted = np.argmax(scores, axis=1)
        known = [(i, truth[k][attr]) for i, k in enumerate(images) if attr in truth[k]]
        out[attr] = float(np.mean([classes[predicted[i]] == v for i, v in known]))
        out[f"{attr}_chance"] = 1.0 / len(classes)
    return out


def _ridge_accuracy(train_x, train_y, test_x, test_y, n_classes, alpha=1.0):
    mean, std = train_x.mean(0), train_x.std(0) + 1e-6
    a, b = (train_x - mean) / std, (test_x - mean) / std
    a = np.concatenate([a, np.ones((len(a), 1))], axis=1)
    b = np.concatenate([b, np.ones((len(b), 1))], axis=1)
    targets = np.eye(n_classes)[train_y] * 2 - 1
    w = np.linalg.solve(a.T @ a + alpha * np.eye(a.shape[1]), a.T @ targets)
    return float(np.mean(np.argmax(b @ w, axis=1) == test_y))


def linear_probe(model, shapes_dir, random_model=None, max_train=3000):
    """Ridge probe accuracy of colour / shape / size on single-object scenes (train split ->
    test split), for ``model`` and, when given, ``random_model`` (same encoder, random init)."""
    sets = {}
    for split in ("train", "test"):
        scenes, config = world_scenes(shapes_dir, split)
        single = [(p, s.objects[0]) for p, s in scenes if len(s.objects) == 1]
        if split == "train":
            single = single[:max_train]
        if not single:
            raise ValueError(f"{shapes_dir}: no single-object {split} scene to probe")
        sets[split] = (_load_images([p for p, _ in single], model.image_encoder.image_size),
                       [o for _, o in single])
    values = {"color": config.colors, "shape": config.shapes, "size": config.sizes}
    out = {"train_scenes": len(sets["train"][1]), "test_scenes": len(sets["test"][1])}
    for name, m in (("pretrained", model), ("random_init", random_model)):
        if m is None:
            continue
        feats = {s: m.encode_images(sets[s][0], features=True) for s in sets}
        out[name] = {}
        for attr in ATTRIBUTES:
            labels = {s: np.array([values[attr].index(getattr(o, attr)) for o in sets[s][1]])
                      for s in sets}
            out[name][attr] = _ridge_accuracy(feats["train"], labels["train"], feats["test"],
                                              labels["test"], len(values[attr]))
    return out


def evaluate_encoder(model, *, data=None, image_root=None, texts="caption,description,questions",
                     shapes_dir=None, prompts="caption", easy_vqa_dir=None, random_model=None,
                     log=print):
    """Every evaluation the arguments allow, as one report dict."""
    report = {}
    if data:
        report["retrieval"] = retrieval(model, data, image_root, texts)
        for kind, r in report["retrieval"].items():
            log(f"retrieval {kind:12s} ({r['images']} images, {r['texts']} texts): "
                f"image->text R@1 {r['i2t_r1']:.1%} R@5 {r['i2t_r5']:.1%} | "
                f"text->image R@1 {r['t2i_r1']:.1%} R@5 {r['t2i_r5']:.1%}")
    if shapes_dir:
        z = report["zero_shot"] = shapes_zero_shot(model, shapes_dir, prompts)
        for method in ("joint", "ensemble"):
            s, p = z[method]["single_object"], z[method]["present"]
            log(f"zero-shot, {method} ({prompts} prompts, {z['single_object_scenes']} "
                f"single-object held-out scenes): colour {s['color']:.1%} (chance "
                f"{z['color_chance']:.0%}), shape {s['shape']:.1%} ({z['shape_chance']:.0%}), "
                f"size {s['size']:.1%} ({z['size_chance']:.0%}); top class present, all "
                f"{z['scenes']} scenes: colour {p['color']:.1%}, shape {p['shape']:.1%}")
        p = report["linear_probe"] = linear_probe(model, shapes_dir, random_model)
        for name in ("pretrained", "random_init"):
            if name in p:
                log(f"linear probe, {name:11s} ({p['train_scenes']} -> {p['test_scenes']} "
                    f"single-object scenes): colour {p[name]['color']:.1%}, shape "
                    f"{p[name]['shape']:.1%}, size {p[name]['size']:.1%}")
    if easy_vqa_dir:
        e = report["easy_vqa_zero_shot"] = easy_vqa_zero_shot(model, easy_vqa_dir)
        log(f"easy-VQA zero-shot ({e['images']} held-out images): colour {e['color']:.1%} "
            f"(chance {e['color_chance']:.1%}), shape {e['shape']:.1%} "
            f"(chance {e['shape_chance']:.1%})")
    return report
