"""easy-VQA (the PyPI package ``easy-vqa``, data shipped inside it) as a LLaVA dataset.

easy-VQA is question-only: 4000 train / 1000 test 64x64 images of one coloured shape (circle,
rectangle, triangle; 8 colours) with ~48k yes/no, colour and shape questions, and no captions.
``write_easy_vqa(out)`` copies the images into ``out/images/`` and writes ``train.json`` /
``test.json`` (one record per question; ``category`` = ``color``, ``shape`` or ``yes/no``) and
``easy_vqa.json``: each image's colour and shape as its questions state them
(``stated_attributes``; an
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
    """The ``data`` folder inside the installed easy-vqa package (a clear error when missing)."""
    spec = importlib.util.find_spec("easy_vqa")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"the easy-VQA data ships in the PyPI package {PACKAGE}; "
                                f"install it with: pip install --no-deps {PACKAGE} (the README's "
                                "install command installs it)")
    return os.path.join(list(spec.submodule_search_locations)[0], "data")


def read_questions(source_dir, split):
    """The package's ``SPLIT/questions.json``, validated entry by entry (the one reader of it).

    Returns ``(path, entries, problems)``: entries ``(index, question, answer, image_id)``
    (stripped strings, an int id), problems ``(index, field, message)`` for each malformed entry
    (index ``"-"`` when the file is not a list). A missing file raises, naming the package.
    """
    path = os.path.join(source_dir, split, "questions.json")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: missing from the {PACKAGE} package; reinstall it with: "
                                f"pip install --no-deps --force-reinstall {PACKAGE}")
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    if not isinstance(data, list):
        return path, [], [("-", "-", "top level must be a list")]
    entries, problems = [], []
    for i, e in enumerate(data):
        if not (isinstance(e, list) and len(e) == 3):
            problems.append((i, "-", "expected [question, answer, image id]"))
        elif not (isinstance(e[0], str) and e[0].strip()):
            problems.append((i, "[0]", "question must be a non-empty string"))
        elif not (isinstance(e[1], str) and e[1].strip()):
            problems.append((i, "[1]", "answer must be a non-empty string"))
        elif not isinstance(e[2], int) or isinstance(e[2], bool):
            problems.append((i, "[2]", "image id must be an integer"))
        else:
            entries.append((i, e[0].strip(), e[1].strip(), e[2]))
    return path, entries, problems


def image_file(source_dir, split, image_id):
    """The package's image file of ``image_id`` in ``split``."""
    return os.path.join(source_dir, split, "images", f"{image_id}.png")


def _category(answer):
    if answer in ("yes", "no"):
        return "yes/no"
    return "color" if answer in COLORS else "shape"


def _negated(words):
    return "not" in words or words[:2] == ["is", "no"]


def is_negated(question):
    """True for easy-VQA's negated yes/no forms ("is there not a circle?", "is no red shape
    present?"): their answer is "no" when the named thing is present."""
    return _negated(question.lower().rstrip("?").split())


def asks_about_present(question, answer):
    """For a yes/no question: True when the colour or shape it names is in the image ("is there
    a circle? yes", "is there not a circle? no"), False when it is not; None for other
    questions. (easy-VQA's yes/no questions name an absent thing four times in five.)"""
    if answer not in ("yes", "no"):
        return None
    return (answer == "yes") != is_negated(question)


def stated_attributes(question, answer):
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
    if (answer == "yes") != _negated(words):  # the question's object is there
        return [("color", c) for c in colors] + [("shape", s) for s in shapes]
    return []


def complement(question, answer, truth, rng):
    """The same yes/no question about the other case: the colour or shape it names swapped so
    that the answer flips -> (question, answer), or None when it names no single attribute or
    ``truth`` (the image's {"color": .., "shape": ..}) lacks it. Named present -> an absent
    value drawn with ``rng``; named absent -> the image's own value."""
    words = question.split()
    named = [(i, attr) for i, w in enumerate(words) for attr, values in
             (("color", COLORS), ("shape", SHAPES)) if w.rstrip("?") in values]
    if len(named) != 1 or named[0][1] not in truth:
        return None
    i, attr = named[0]
    word = words[i].rstrip("?")
    values = COLORS if attr == "color" else SHAPES
    if word == truth[attr]:
        others = [v for v in values if v != word]
        new = others[int(rng.integers(len(others)))]
    else:
        new = truth[attr]
    words[i] = words[i].replace(word, new)
    return " ".join(words), "no" if answer == "yes" else "yes"


def write_easy_vqa(out_dir, source_dir=None):
    """Write the LLaVA files of easy-VQA into ``out_dir``; returns the summary."""
    source_dir = source_dir or package_data_dir()
    os.makedirs(os.path.join(out_dir, "images"), exist_ok=True)
    summary, truth = {}, {}
    for split in SPLITS:
        path, entries, problems = read_questions(source_dir, split)
        if problems:
            n, field, message = problems[0]
            raise ValueError(f"{path}: question {n} field {field}: {message} ({len(problems)} "
                             "malformed entries)")
        records, seen = [], {}
        for n, text, answer, image_id in entries:
            image = f"images/{split}_{int(image_id):05d}.png"
            if image not in seen:
                src = image_file(source_dir, split, image_id)
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
            for attr, value in stated_attributes(text, answer):
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
