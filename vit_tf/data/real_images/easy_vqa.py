"""easy-VQA (PyPI ``easy-vqa==1.0``, MIT): 64 px images of one coloured shape with questions.

The package ships ``easy_vqa/data/{train,test}/questions.json`` (entries ``[question, answer,
image id]``) and ``images/<id>.png``. Every entry becomes a one-question record (category
``easy_vqa``); an image whose questions name both its colour and its shape ("what is the blue
shape?" -> rectangle) also gets a caption ("a blue rectangle") and a two-turn conversation of
its first two questions. A malformed entry or a missing image is a problem naming the package
file, the entry index and the field.
"""

import importlib.util
import json
import os
import re
import shutil

from vit_tf.data.real_images.common import caption_record, source_problem

PACKAGE = "easy-vqa"
INSTALL = "bash tools/install_real_images.sh"
LICENCE = {"source": "easy-VQA (PyPI easy-vqa==1.0)", "licence": "MIT", "package": "easy-vqa==1.0"}
_WHAT_SHAPE = re.compile(r"^what is the (\w+) shape\?$")
_WHAT_COLOR = re.compile(r"^what colou?r is the (\w+)\?$")


def package_data_dir():
    spec = importlib.util.find_spec("easy_vqa")
    if spec is None or not spec.origin:
        raise FileNotFoundError(f"the {PACKAGE} package is not installed; run {INSTALL}")
    return os.path.join(os.path.dirname(spec.origin), "data")


def _entries(path):
    """(entries, problems) of one questions.json: entries are (index, question, answer, id)."""
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    if not isinstance(data, list):
        return [], [source_problem(path, "-", "-", "top level must be a list")]
    entries, problems = [], []
    for i, e in enumerate(data):
        def bad(field, message):
            problems.append(source_problem(path, f"#{i}", field, message))

        if not (isinstance(e, list) and len(e) == 3):
            bad("-", "expected [question, answer, image id]")
        elif not (isinstance(e[0], str) and e[0].strip()):
            bad("[0]", "question must be a non-empty string")
        elif not (isinstance(e[1], str) and e[1].strip()):
            bad("[1]", "answer must be a non-empty string")
        elif not isinstance(e[2], int) or isinstance(e[2], bool):
            bad("[2]", "image id must be an integer")
        else:
            entries.append((i, e[0].strip(), e[1].strip(), e[2]))
    return entries, problems


def easy_vqa_records(out_dir, split, data_dir=None, max_images=None, image_dir="images/easy_vqa"):
    """Records of one split (``train`` / ``test``), images copied to ``out_dir/image_dir/split``;
    ``max_images``: the first N image ids only. -> (converted [(record, problems)], problems)."""
    data_dir = data_dir or package_data_dir()
    qpath = os.path.join(data_dir, split, "questions.json")
    if not os.path.isfile(qpath):
        raise FileNotFoundError(f"{qpath}: missing from the {PACKAGE} package; run {INSTALL}")
    entries, problems = _entries(qpath)
    if max_images is not None:
        keep = sorted({e[3] for e in entries})[:max_images]
        entries = [e for e in entries if e[3] in set(keep)]
    os.makedirs(os.path.join(out_dir, image_dir, split), exist_ok=True)
    by_image, converted = {}, []
    for index, question, answer, image_id in entries:
        src = os.path.join(data_dir, split, "images", f"{image_id}.png")
        rel = f"{image_dir}/{split}/{image_id}.png"
        if not os.path.isfile(src):
            problems.append(source_problem(qpath, f"#{index}", "[2]",
                                           f"image {image_id} not in the package ({src})",
                                           "missing image"))
            continue
        if not os.path.exists(os.path.join(out_dir, rel)):
            shutil.copyfile(src, os.path.join(out_dir, rel))
        by_image.setdefault(image_id, []).append((index, question, answer))
        converted.append(({"id": f"easyvqa-{split}-{index}", "image": rel, "category": "easy_vqa",
                           "source": "easy_vqa",
                           "conversations": [{"from": "human", "value": f"<image>\n{question}"},
                                             {"from": "gpt", "value": answer}]}, []))
    for image_id, qs in sorted(by_image.items()):
        rel = f"{image_dir}/{split}/{image_id}.png"
        color = shape = None
        for _, q, a in qs:
            if m := _WHAT_SHAPE.match(q.lower()):
                color, shape = m.group(1), a
            elif m := _WHAT_COLOR.match(q.lower()):
                color = a
                shape = shape if m.group(1) == "shape" else m.group(1)
        if color and shape:
            record = caption_record(f"easyvqa-{split}-img{image_id}-caption", rel,
                                    f"a {color} {shape}", words=[shape, shape + "s"])
            converted.append(({**record, "source": "easy_vqa"}, []))
        if len(qs) >= 2:
            turns = []
            for k, (_, q, a) in enumerate(qs[:2]):
                turns += [{"from": "human", "value": ("<image>\n" if k == 0 else "") + q},
                          {"from": "gpt", "value": a}]
            converted.append(({"id": f"easyvqa-{split}-img{image_id}-conversation", "image": rel,
                               "category": "conversation", "source": "easy_vqa",
                               "conversations": turns}, []))
    return converted, problems
