"""easy-VQA (the PyPI package ``easy-vqa``, data shipped inside it) as a LLaVA dataset.

easy-VQA is question-only: 4000 train / 1000 test 64x64 images of one coloured shape (circle,
rectangle, triangle; 8 colours) with ~48k yes/no, colour and shape questions, and no captions.
``write_easy_vqa(out)`` copies the images into ``out/images/`` and writes ``train.json`` /
``test.json`` (one record per question; ``category`` = ``color``, ``shape`` or ``yes/no``) and
``easy_vqa.json``: each image's colour and shape as its questions state them (``_truth``; an
image whose questions disagree raises), the ground truth of zero-shot tests.

The package is installed by the project's install step (``requirements-weights.txt``); nothing
is downloaded.

Example:
    >>> write_easy_vqa("data/easy_vqa")["train"]
    {'images': 4000, 'records': 38575}
"""

import importlib.util
import json
import os
import re
import shutil

PACKAGE = "easy-vqa==1.0"
COLORS = ("red", "green", "blue", "black", "gray", "teal", "brown", "yellow")
SHAPES = ("circle", "rectangle", "triangle")
SPLITS = ("train", "test")


def package_data_dir():
    spec = importlib.util.find_spec("easy_vqa")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"the easy-VQA data ships in the PyPI package {PACKAGE}; "
                                f"install it with: pip install --no-deps {PACKAGE} (the README's "
                                "install command installs it)")
    return os.path.join(list(spec.submodule_search_locations)[0], "data")


def _category(answer):
    if answer in ("yes", "no"):
        return "yes/no"
    return "color" if answer in COLORS else "shape"


def _truth(question, answer):
    """[(attribute, value)] a question states about its image: "what color is the shape? red",
    "what is the blue shape? circle" (both), or a yes/no question that affirms a colour or a
    shape ("is there a red shape? yes", "is there not a circle? no")."""
    words = question.rstrip("?").split()
    colors = [w for w in words if w in COLORS]
    shapes = [w for w in words if w in SHAPES]
    if answer in COLORS:
        return [("color", answer)] + [("shape", s) for s in shapes]
    if answer in SHAPES:
        return [("shape", answer)] + [("color", c) for c in colors]
    negated = "not" in words or words[:2] == ["is", "no"]
    if (answer == "yes") != negated:          # the question's object is there
        return [("color", c) for c in colors] + [("shape", s) for s in shapes]
    return []


def write_easy_vqa(out_dir, source_dir=None):
    """Write the LLaVA files of easy-VQA into ``out_dir``; returns the summary."""
    source_dir = source_dir or package_data_dir()
    os.makedirs(os.path.join(out_dir, "images"), exist_ok=True)
    summary, truth = {}, {}
    for split in SPLITS:
        path = os.path.join(source_dir, split, "questions.json")
        with open(path) as f:
            questions = json.load(f)
        records, seen = [], {}
        for n, item in enumerate(questions):
            if not (isinstance(item, list) and len(item) == 3):
                raise ValueError(f"{path}: question {n}: expected [text, answer, image id], got "
                                 f"{item!r}")
            text, answer, image_id = item
            image = f"images/{split}_{int(image_id):05d}.png"
            if image not in seen:
                src = os.path.join(source_dir, split, "images", f"{image_id}.png")
                if not os.path.isfile(src):
                    raise FileNotFoundError(f"{path}: question {n} names image {image_id}, but "
                                            f"{src} is missing")
                shutil.copyfile(src, os.path.join(out_dir, image))
                seen[image] = 0
            seen[image] += 1
            records.append({"id": f"{split}-{int(image_id):05d}-{seen[image]}", "image": image,
                            "category": _category(answer),
                            "conversations": [{"from": "human", "value": f"<image>\n{text}"},
                                              {"from": "gpt", "value": answer}]})
            for attr, value in _truth(text, answer):
                known = truth.setdefault(image, {}).setdefault(attr, value)
                if known != value:
                    raise ValueError(f"{path}: question {n} says the {attr} of image "
                                     f"{image_id} is {value}, an earlier one {known}")
        with open(os.path.join(out_dir, f"{split}.json"), "w") as f:
            json.dump(records, f, indent=1)
        summary[split] = {"images": len(seen), "records": len(records)}
    with open(os.path.join(out_dir, "easy_vqa.json"), "w") as f:
        json.dump({"package": PACKAGE, "colors": COLORS, "shapes": SHAPES, "images": truth,
                   **summary}, f, indent=1)
    return summary
