"""Shared pieces of the real captioned-image sources: captions, object words, record ids.

Every source turns what its package ships into LLaVA records (``id``, ``image``,
``conversations``, ``category``, optional ``references`` and ``object_words``); problems with the
package's own fields are ``Problem``s naming the package file, the entry and the field, and the
records are validated like every other source (``vit_tf.data.sources.common.finish_records``).
"""

import hashlib
import re

from vit_tf.data.sources.validation import Problem

CAPTION_PROMPTS = (
    "What is in the picture? Answer in a few words.",
    "Describe the image in a few words.",
    "What does this image show? Be brief.",
)
EVAL_CAPTION_PROMPT = CAPTION_PROMPTS[0]
STOPWORDS = frozenset(
    "a an the of with and or in on at to for by from its his her their is are this that "
    "image picture photo color colour gray level used".split())


def article(phrase):
    return ("an " if phrase[:1].lower() in "aeiou" else "a ") + phrase


def object_words(text):
    """The content words of a name or description."""
    words = re.findall(r"[a-z]+", text.lower())
    return sorted({w for w in words if w not in STOPWORDS and len(w) > 2})


def head_noun(name):
    """The object a name names: the last content word before " with " / " of " / ...
    ("red apple" -> apple, "grinning face with smiling eyes" -> face); what 'names the
    object' looks for in a caption (with its plural)."""
    phrase = re.split(r" (?:with|of|in|on|from|by|for|and) ", name.lower())[0]
    words = [w for w in re.findall(r"[a-z]+", phrase) if w not in STOPWORDS]
    if not words:
        return object_words(name)
    return [words[-1], words[-1] + "s"]


def caption_record(record_id, image, caption, *, prompt=None, category="caption", words=None):
    """One caption instruction: ``prompt`` (default: one of ``CAPTION_PROMPTS``, fixed per id)."""
    if prompt is None:
        prompt = CAPTION_PROMPTS[stable_hash(record_id) % len(CAPTION_PROMPTS)]
    return {"id": record_id, "image": image, "category": category,
            "conversations": [{"from": "human", "value": f"<image>\n{prompt}"},
                              {"from": "gpt", "value": caption}],
            "references": [caption], "object_words": words or object_words(caption)}


def stable_hash(text):
    """A hash that does not change between processes (Python's ``hash`` is salted)."""
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16)


def held_out(key, fraction):
    """Whether ``key`` belongs to the held-out split (a fixed share, by hash)."""
    return stable_hash(key) % 1000 < fraction * 1000


def source_problem(file, entry, field, message, kind="bad source entry"):
    return Problem(str(file), str(entry), field, message, kind)
