"""Real captioned images from registry packages, written as the project's LLaVA JSON.

``build_real_images(out)`` (``vit-tf data real-images --out DIR``) writes::

    OUT/train.json             emoji captions (train share), easy-VQA train questions, captions
                               and two-turn conversations, optional shapes-world questions
    OUT/heldout_captions.json  emoji captions (held-out share, by a fixed hash of the id) and
                               scikit-image's photos (category ``photo``), one fixed prompt
    OUT/easyvqa_test.json      easy-VQA test questions (the first ``--vqa-test-images`` images)
    OUT/sources.json           each source's package, licence and record counts
    OUT/images/...             the images (PNG)

Sources (``vit_tf.data.real_images.{emoji,easy_vqa,photos}``; installed by
``tools/install_real_images.sh``): Debian ``fonts-noto-color-emoji`` + ``unicodedata`` names,
PyPI ``easy-vqa``, scikit-image's sample photos. Every record is validated as any source is
(``finish_records``: structure, ids, images); a source's own bad entries name the package file,
entry and field. Invalid records stop the build unless ``skip_invalid`` (then counted).

Example:
    >>> summary = build_real_images("data/real", vqa_train_images=1500)
    >>> summary["files"]["train.json"]["records"]
"""

import json
import os

from vit_tf.data.real_images import easy_vqa, emoji, photos
from vit_tf.data.real_images.common import EVAL_CAPTION_PROMPT, held_out
from vit_tf.data.sources.common import finish_records

HELD_OUT_FRACTION = 0.12


def _with_eval_prompt(record):
    turns = [dict(t) for t in record["conversations"]]
    turns[0]["value"] = f"<image>\n{EVAL_CAPTION_PROMPT}"
    return {**record, "conversations": turns}


def _shapes_records(out, n_scenes, seed):
    from vit_tf.data.shapes import write_shapes_world

    folder = os.path.join(out, "shapes")
    write_shapes_world(folder, n_scenes, 0, seed=seed)
    with open(os.path.join(folder, "train.json")) as f:
        records = json.load(f)
    return [({**r, "id": f"shapes-{r['id']}", "image": f"shapes/{r['image']}",
              "category": f"shapes_{r.get('category', '')}", "source": "shapes"}, [])
            for r in records]


def _write(out, name, converted, problems, skip_invalid, log):
    """Validate ``converted`` like every reader, write the valid records; -> counts."""
    path = os.path.join(out, name)
    dataset = finish_records(path, converted, out, skip_invalid=skip_invalid,
                             extra_problems=problems)
    records = [{k: v for k, v in r.items() if k != "image_path"} for r in dataset.records]
    with open(path, "w", encoding="utf-8") as f:
        json.dump(records, f, indent=1, ensure_ascii=False)
    counts = {}
    for r in records:
        counts[r["category"]] = counts.get(r["category"], 0) + 1
    if dataset.skipped or problems:
        log(f"{name}: skipped {dataset.skipped} invalid records and {len(problems)} bad source "
            f"entries (--skip-invalid): {dataset.report.summary()}")
    log(f"{name}: {len(records)} records {counts}")
    return {"records": len(records), "categories": counts, "skipped": dataset.skipped,
            "bad_source_entries": len(problems)}


def build_real_images(out, *, vqa_train_images=4000, vqa_test_images=100, shapes_scenes=0,
                      emoji_font=emoji.FONT, easy_vqa_dir=None, photo_names=photos.PHOTOS,
                      emoji_limit=None, emoji_font_object=None, emoji_ranges=emoji.RANGES,
                      seed=0, skip_invalid=False, log=print):
    """Build the real-image sets into ``out`` (see the module docstring); returns the summary
    written to ``OUT/sources.json``."""
    os.makedirs(out, exist_ok=True)
    emo = emoji.emoji_records(out, font_path=emoji_font, limit=emoji_limit,
                              font=emoji_font_object, ranges=emoji_ranges)
    emo_train = [(r, p) for r, p in emo if not held_out(r["id"], HELD_OUT_FRACTION)]
    emo_test = [(_with_eval_prompt(r), p) for r, p in emo if held_out(r["id"], HELD_OUT_FRACTION)]
    vqa_train, bad_train = easy_vqa.easy_vqa_records(out, "train", easy_vqa_dir, vqa_train_images)
    vqa_test, bad_test = easy_vqa.easy_vqa_records(out, "test", easy_vqa_dir, vqa_test_images)
    vqa_test = [(r, p) for r, p in vqa_test if r.get("category") == "easy_vqa"]
    shapes = _shapes_records(out, shapes_scenes, seed) if shapes_scenes else []
    files = {
        "train.json": _write(out, "train.json", emo_train + vqa_train + shapes, bad_train,
                             skip_invalid, log),
        "heldout_captions.json": _write(out, "heldout_captions.json",
                                        emo_test + photos.photo_records(out, names=photo_names),
                                        [], skip_invalid, log),
        "easyvqa_test.json": _write(out, "easyvqa_test.json", vqa_test, bad_test, skip_invalid,
                                    log),
    }
    summary = {"sources": [emoji.LICENCE, easy_vqa.LICENCE, photos.LICENCE]
               + ([{"source": "vit_tf shapes world", "licence": "generated",
                    "package": "vit_tf"}] if shapes else []),
               "held_out": f"emoji: {HELD_OUT_FRACTION:.0%} by SHA-256 of the record id; "
                           "easy-VQA: the package's test split; photos: all held out",
               "settings": {"vqa_train_images": vqa_train_images,
                            "vqa_test_images": vqa_test_images, "shapes_scenes": shapes_scenes,
                            "emoji_limit": emoji_limit, "seed": seed},
               "files": files}
    with open(os.path.join(out, "sources.json"), "w") as f:
        json.dump(summary, f, indent=2)
    return summary
