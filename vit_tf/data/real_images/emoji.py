"""Noto Color Emoji (Debian ``fonts-noto-color-emoji``) rendered by Pillow, captioned with the
Unicode character names Python's ``unicodedata`` knows ("RED APPLE" -> "a red apple").

A codepoint is an image of this source when ``unicodedata`` names it and the font has a colour
glyph for it (its rendering differs from the font's missing-glyph box). Single codepoints only
(no ZWJ sequences, flags or skin-tone modifiers), in the emoji blocks listed in ``RANGES``.
Licence: the font is SIL Open Font License 1.1 (Debian's copyright file), the emoji artwork
Apache-2.0 (Google's noto-emoji); the names are Unicode's.
"""

import os
import unicodedata

from vit_tf.data.real_images.common import article, caption_record, head_noun

FONT = "/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf"
PACKAGE = "fonts-noto-color-emoji"
INSTALL = "bash tools/install_real_images.sh"
RANGES = ((0x1F300, 0x1F5FF), (0x1F600, 0x1F64F), (0x1F680, 0x1F6FF), (0x1F900, 0x1F9FF),
          (0x1FA70, 0x1FAFF), (0x2600, 0x27BF))
GLYPH_SIZE = 109            # the one bitmap size the CBDT font carries
SIDE = 160                  # each emoji centred on a white 160 x 160 canvas
LICENCE = {"source": "Noto Color Emoji (Debian fonts-noto-color-emoji) + unicodedata names",
           "licence": "font: SIL OFL 1.1; artwork: Apache-2.0; names: Unicode",
           "package": PACKAGE}


def _font(path):
    from PIL import ImageFont

    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: the {PACKAGE} font is not installed; run {INSTALL}")
    return ImageFont.truetype(path, GLYPH_SIZE)


def render(char, font):
    """One emoji on a white SIDE x SIDE RGB canvas."""
    from PIL import Image, ImageDraw

    glyph = Image.new("RGBA", (GLYPH_SIZE + 40, GLYPH_SIZE + 40), (0, 0, 0, 0))
    ImageDraw.Draw(glyph).text((0, 0), char, font=font, embedded_color=True)
    box = glyph.getbbox()
    canvas = Image.new("RGB", (SIDE, SIDE), "white")
    if box is None:
        return canvas
    glyph = glyph.crop(box)
    canvas.paste(glyph, ((SIDE - glyph.width) // 2, (SIDE - glyph.height) // 2), glyph)
    return canvas


def emoji_records(out_dir, image_dir="images/emoji", font_path=FONT, limit=None, font=None,
                  ranges=RANGES):
    """Render every emoji of the font into ``out_dir/image_dir``; -> [(record, problems)].
    ``font``: a loaded Pillow font instead of ``font_path`` (tests use Pillow's own)."""
    font = font or _font(font_path)
    empty = {render("\ue000", font).tobytes(),             # a private-use codepoint: no glyph
             render(" ", font).tobytes()}
    os.makedirs(os.path.join(out_dir, image_dir), exist_ok=True)
    converted = []
    for lo, hi in ranges:
        for code in range(lo, hi + 1):
            char = chr(code)
            name = unicodedata.name(char, "")
            if not name:
                continue
            image = render(char, font)
            if image.tobytes() in empty:
                continue
            rel = f"{image_dir}/u{code:05x}.png"
            image.save(os.path.join(out_dir, rel))
            phrase = name.lower()
            record = caption_record(f"emoji-u{code:05x}", rel, article(phrase),
                                    words=head_noun(phrase))
            record["source"] = "emoji"
            converted.append((record, []))
            if limit and len(converted) >= limit:
                return converted
    return converted
