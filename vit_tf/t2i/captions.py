"""Captioned images for text-to-image training, from any data the readers understand.

``read_captions`` goes through ``vit_tf.data.sources.read_data_argument`` (LLaVA JSON such as
the shapes world's, COCO captions, tfds, an image folder with ``.txt`` captions), so it reports
problems exactly as they do (file, record id, field; ``skip_invalid`` with a count). A record
is a caption when its ``category`` is one of ``categories`` (the shapes world's ``caption`` and
``description``; the COCO, tfds-captions and image-folder readers call theirs ``caption``); its
text is the first answer, and every one of its ``references`` (all of an image's COCO captions)
becomes a pair. Records of other categories (questions) are counted in ``not_captions``.

Held-out compositions: ``hold_out`` colour-shape pairs (``"red:triangle,blue:circle"``) are
never seen together in training. Every image one of whose captions names a held-out pair
("... red triangle ...") is left out with all its captions and counted in ``held_out`` — its
other captions may not name the pair, but its pixels show it.

Example::

    data = read_captions("shapes/train.json", "shapes", hold_out="red:triangle")
    data.pairs[0]      # CaptionPair(image_path='/abs/shapes/images/train_000000.png', caption=...)
"""

import dataclasses
import re

from vit_tf.data.sources.readers import read_data_argument

CAPTION_CATEGORIES = ("caption", "description")


@dataclasses.dataclass(frozen=True)
class CaptionPair:
    image_path: str
    caption: str
    record_id: str


@dataclasses.dataclass
class CaptionData:
    """The pairs, and what was not used: records of other categories, held-out images, invalid
    records skipped on request."""

    pairs: list
    n_records: int
    not_captions: int
    held_out: int
    skipped: int

    def summary(self):
        images = len({p.image_path for p in self.pairs})
        return (f"{len(self.pairs)} captions of {images} images from {self.n_records} records "
                f"({self.not_captions} not captions, {self.held_out} held out for their "
                f"compositions, {self.skipped} invalid skipped)")


def parse_hold_out(text):
    """"red:triangle,blue:circle" -> [("red", "triangle"), ("blue", "circle")]."""
    pairs = []
    for item in filter(None, (part.strip() for part in str(text).split(","))):
        colour, sep, shape = item.partition(":")
        if not sep or not re.fullmatch(r"[a-z]+", colour.strip()) or not re.fullmatch(
                r"[a-z]+", shape.strip()):
            raise ValueError(f"hold_out: {item!r} must look like colour:shape, e.g. red:triangle")
        pairs.append((colour.strip(), shape.strip()))
    return pairs


def names_pair(caption, pair):
    """The caption names colour ``pair[0]`` directly before shape ``pair[1]`` (plural too)."""
    colour, shape = pair
    return re.search(rf"\b{colour}\s+{shape}s?\b", caption.lower()) is not None


def read_captions(data, image_root, data_format="llava", categories=CAPTION_CATEGORIES,
                  hold_out=(), skip_invalid=False, annotations=None, tfds_data_dir=None):
    """Caption pairs of ``data`` (see the module docstring); ``categories=()`` takes every
    record's first answer as its caption."""
    if isinstance(hold_out, str):
        hold_out = parse_hold_out(hold_out)
    if isinstance(categories, str):
        categories = tuple(c.strip() for c in categories.split(",") if c.strip())
    source = read_data_argument(data_format, data, image_root, annotations=annotations,
                                tfds_data_dir=tfds_data_dir, skip_invalid=skip_invalid)
    pairs, not_captions = [], 0
    for record in source.records:
        if categories and record.get("category") not in categories:
            not_captions += 1
            continue
        answer = next(t["value"] for t in record["conversations"] if t["from"] == "gpt")
        for caption in record.get("references") or [answer]:
            pairs.append(CaptionPair(record["image_path"], caption.strip(), record["id"]))
    if not pairs:
        wanted = ", ".join(categories) if categories else "any"
        raise ValueError(f"{data}: no caption records (categories {wanted}) among "
                         f"{len(source.records)} records")
    banned = {p.image_path for p in pairs if any(names_pair(p.caption, h) for h in hold_out)}
    kept = [p for p in pairs if p.image_path not in banned]
    held_out = len({p.record_id for p in pairs if p.image_path in banned})
    return CaptionData(kept, len(source.records) + source.skipped, not_captions, held_out,
                       source.skipped)
