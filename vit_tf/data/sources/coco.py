"""Read COCO-captions JSON (``images`` + ``annotations``) as caption instructions.

The format of ``captions_train2017.json`` and friends::

    {"images": [{"id": 391895, "file_name": "000000391895.jpg", ...}, ...],
     "annotations": [{"id": 770337, "image_id": 391895, "caption": "A man riding ..."}, ...]}

Each image becomes one record (``one_per_caption=False``, for evaluation) whose answer is its
first caption (lowest annotation id) and whose ``references`` hold all its captions, for
BLEU / CIDEr-D / ROUGE-L; or one record per caption (``one_per_caption=True``, for training),
with id ``"<image id>/<annotation id>"``. The question is ``CAPTION_PROMPT``, pinned so
numbers reproduce. Problems name the file, the image or annotation id and the field::

    data/captions.json: record '770337' field annotations[4].caption: caption is empty

Example:
    >>> data = read_coco_captions("annotations/captions_val2017.json", "val2017")
    >>> data.records[0]["references"]   # every human caption of the first image
"""

import collections

from vit_tf.data.sources.common import finish_records, is_id, is_text, load_json_object
from vit_tf.data.sources.llava import IMAGE_TOKEN
from vit_tf.data.sources.validation import Problem

CAPTION_PROMPT = "Describe the image briefly."
CAPTION_CATEGORY = "caption"


def caption_record(record_id, image, caption, references, prompt=CAPTION_PROMPT):
    """One caption instruction in the LLaVA shape (shared with the tfds reader)."""
    return {"id": record_id, "image": image, "category": CAPTION_CATEGORY,
            "conversations": [{"from": "human", "value": f"{IMAGE_TOKEN}\n{prompt}"},
                              {"from": "gpt", "value": caption}],
            "references": list(references)}


def read_coco_captions(json_path, image_root, *, one_per_caption=False, prompt=CAPTION_PROMPT,
                       skip_invalid=False, check_images=True, num_workers=None):
    """Read a COCO-captions file; returns a ``LlavaDataset`` (records, report, skipped)."""
    json_path = str(json_path)
    data = load_json_object(json_path, ("images", "annotations"))

    def problem(record_id, field, message, kind):
        return Problem(json_path, str(record_id), field, message, kind)

    images, image_problems = {}, collections.defaultdict(list)
    order = []
    for i, image in enumerate(data["images"]):
        field = f"images[{i}]"
        if not isinstance(image, dict):
            image_problems[f"#{i}"].append(problem(f"#{i}", field, "image entry must be an "
                                                   "object", "bad image entry"))
            order.append(f"#{i}")
            continue
        key = str(image["id"]) if is_id(image.get("id")) else f"#{i}"
        order.append(key)
        if not is_id(image.get("id")):
            image_problems[key].append(problem(key, f"{field}.id", "image has no usable 'id'",
                                               "missing id"))
        elif key in images:
            image_problems[key].append(problem(key, f"{field}.id", "duplicate image id",
                                               "duplicate id"))
        if not is_text(image.get("file_name")):
            image_problems[key].append(problem(key, f"{field}.file_name", "image has no "
                                               "'file_name' string", "missing image field"))
        images.setdefault(key, image)

    captions = collections.defaultdict(list)   # image key -> [(annotation id, caption)]
    annotation_problems = []
    for i, ann in enumerate(data["annotations"]):
        field = f"annotations[{i}]"
        if not isinstance(ann, dict):
            annotation_problems.append(problem(f"#{i}", field, "annotation must be an object",
                                               "bad annotation"))
            continue
        ann_id = ann["id"] if is_id(ann.get("id")) else f"#{i}"
        image_key = str(ann.get("image_id"))
        if not is_id(ann.get("image_id")):
            annotation_problems.append(problem(ann_id, f"{field}.image_id", "annotation has no "
                                               "usable 'image_id'", "missing image_id"))
        elif image_key not in images:
            annotation_problems.append(problem(ann_id, f"{field}.image_id", f"image_id "
                                               f"{ann['image_id']!r} is not in 'images'",
                                               "unknown image_id"))
        elif not is_text(ann.get("caption")):
            kind = "missing caption" if "caption" not in ann else "empty caption"
            annotation_problems.append(problem(ann_id, f"{field}.caption",
                                               "caption is missing" if "caption" not in ann
                                               else "caption is empty or not a string", kind))
        else:
            sort_key = (0, ann_id) if isinstance(ann_id, int) else (1, str(ann_id))
            captions[image_key].append((sort_key, ann_id, ann["caption"].strip()))

    converted = []
    for key in order:
        image = images.get(key)
        problems = list(image_problems.get(key, ()))
        found = sorted(captions.get(key, ()))
        if not problems and not found:
            problems.append(problem(key, "annotations", "image has no caption annotation",
                                    "no captions"))
        if problems:
            converted.append(({"id": key}, problems))
            continue
        references = [caption for _, _, caption in found]
        if one_per_caption:
            for _, ann_id, caption in found:
                converted.append((caption_record(f"{key}/{ann_id}", image["file_name"], caption,
                                                 references, prompt), []))
        else:
            converted.append((caption_record(key, image["file_name"], references[0], references,
                                             prompt), []))
    return finish_records(json_path, converted, image_root, skip_invalid=skip_invalid,
                          check_images=check_images, num_workers=num_workers,
                          extra_problems=annotation_problems)
