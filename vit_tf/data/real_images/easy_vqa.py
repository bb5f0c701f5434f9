"""easy-VQA (PyPI ``easy-vqa==1.0``, MIT): 64 px images of one coloured shape with questions.

The package ships ``easy_vqa/data/{train,test}/questions.json`` (entries ``[question, answer,
image id]``) and ``images/<id>.png``. Every entry becomes a one-question record (category
``easy_vqa``); an image whose questions name both its colour and its shape ("what is the blue
shape?" -> rectangle) also gets a caption ("a blue rectangle") and a two-turn conversation of
its first two questions. A malformed entry or a missing image is a problem naming the package
file, the entry index and the field.
"""

import os
import re
import shutil

from vit_tf.data.real_images.common import caption_record, source_problem
from vit_tf.data.sources.easy_vqa import image_file, package_data_dir, read_questions

LICENCE = {"source": "easy-VQA (PyPI easy-vqa==1.0)", "licence": "MIT", "package": "easy-vqa==1.0"}
_WHAT_SHAPE = re.compile(r"^what is the (\w+) shape\?$")
_WHAT_COLOR = re.compile(r"^what colou?r is the (\w+)\?$")


def _entries(data_dir, split):
    """(path, entries, problems) of the package's questions (read by the one reader,
    ``vit_tf.data.sources.easy_vqa.read_questions``), problems as this builder reports them."""
    path, entries, problems = read_questions(data_dir, split)
    return path, entries, [source_problem(path, "-" if i == "-" else f"#{i}", field, message)
                           for i, field, message in problems]


def easy_vqa_records(out_dir, split, data_dir=None, max_images=None, image_dir="images/easy_vqa"):
    """Records of one split (``train`` / ``test``), images copied to ``out_dir/image_dir/split``;
    ``max_images``: the first N image ids only. -> (converted [(record, problems)], problems)."""
    data_dir = data_dir or package_data_dir()
    qpath, entries, problems = _entries(data_dir, split)
    if max_images is not None:
        keep = sorted({e[3] for e in entries})[:max_images]
        entries = [e for e in entries if e[3] in set(keep)]
    os.makedirs(os.path.join(out_dir, image_dir, split), exist_ok=True)
    by_image, converted = {}, []
    for index, question, answer, image_id in entries:
        src = image_file(data_dir, split, image_id)
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
