"""scikit-image's sample photographs (``skimage.data``) with the one-line descriptions of their
docstrings ("Chelsea the cat.", "Coffee cup."): a small held-out set of real photos.

Only the photos that ship inside the scikit-image wheel (no download). Licences are those the
``skimage.data`` docstrings state (public domain / CC0 / CC BY); see ``LICENCE``.
"""

import inspect
import os

import numpy as np

from vit_tf.data.real_images.common import EVAL_CAPTION_PROMPT, caption_record, source_problem

# photo -> the words a caption that names its object would use (written by hand: the
# docstrings' lines are not names, e.g. "Color image of the astronaut Eileen Collins")
OBJECT_WORDS = {
    "astronaut": ["astronaut", "woman", "person"], "chelsea": ["cat", "kitten"],
    "coffee": ["coffee", "cup", "espresso"], "rocket": ["rocket", "launch"],
    "camera": ["camera", "man", "photographer"], "horse": ["horse"], "clock": ["clock"],
    "coins": ["coins", "coin"], "moon": ["moon"], "page": ["page", "text", "book"],
    "brick": ["brick", "bricks", "wall"], "grass": ["grass"], "gravel": ["gravel", "stones"],
    "hubble_deep_field": ["galaxies", "galaxy", "stars", "space"],
    "immunohistochemistry": ["cells", "tissue", "stain"], "retina": ["retina", "eye"],
    "colorwheel": ["wheel", "colors", "colours", "rainbow"]}
PHOTOS = tuple(OBJECT_WORDS)
LICENCE = {"source": "scikit-image sample photos (skimage.data) + docstring descriptions",
           "licence": "per photo, as each skimage.data docstring states (public domain, CC0 "
                      "or CC BY)", "package": "scikit-image==0.26.0"}


def description(name):
    """The first line of ``skimage.data.<name>``'s docstring, as a caption."""
    import skimage.data

    doc = inspect.getdoc(getattr(skimage.data, name)) or ""
    return doc.splitlines()[0].strip().rstrip(".") if doc else ""


def photo_records(out_dir, image_dir="images/photos", names=PHOTOS):
    """Write each photo as PNG; -> [(record, problems)] (caption category ``photo``)."""
    import skimage.data
    from PIL import Image

    os.makedirs(os.path.join(out_dir, image_dir), exist_ok=True)
    converted = []
    for name in names:
        record_id = f"photo-{name}"
        caption = description(name)
        if not caption:
            converted.append(({"id": record_id}, [source_problem(
                "skimage.data", record_id, "docstring", f"skimage.data.{name} has no docstring")]))
            continue
        pixels = np.asarray(getattr(skimage.data, name)())
        rel = f"{image_dir}/{name}.png"
        Image.fromarray(pixels.astype(np.uint8)).convert("RGB").save(os.path.join(out_dir, rel))
        record = caption_record(record_id, rel, caption.lower(),
                                prompt=EVAL_CAPTION_PROMPT, category="photo",
                                words=OBJECT_WORDS.get(name))
        converted.append(({**record, "source": "skimage"}, []))
    return converted
