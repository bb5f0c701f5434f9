"""Chat formats: how a conversation's roles and turn ends are written in one tokenizer's ids.

Our template (``vit_tf.data.template``) writes a conversation as segments: a role marker
(``<|user|>`` / ``<|assistant|>``), the turn's text, ``<|end|>``. A chat format says what each
marker is in a given vocabulary, as a *sequence* of items: an item in ``special`` is one
vocabulary entry looked up by id (it must exist), any other item is tokenized as text.

    vit_tf  <|user|> {text} <|end|> <|assistant|> {answer} <|end|>     (our WordPiece: one
            reserved id per marker)
    gemma   <bos> <start_of_turn>user\\n {text} <end_of_turn>\\n <start_of_turn>model\\n ...
    llama3  <|begin_of_text|> <|start_header_id|>user<|end_header_id|>\\n\\n {text} <|eot_id|> ...
    chatml  <|im_start|>user\\n {text} <|im_end|>\\n <|im_start|>assistant\\n ... (SmolLM2, Qwen)
    bert    {text} with <|user|>, <|assistant|>, <|end|> appended to the vocabulary as 3 new ids
            (BERT has no chat format; its text only feeds our decoder's input embeddings)

The first id of ``<|end|>``'s sequence is the stop token; the assistant's text and the whole
``<|end|>`` sequence are trained. Padding is id 0 for every family: padded positions are masked
(``padding_mask``, zero loss weight), so the token there never matters.

A keras-hub preset folder may say which format its conversations use in ``chat_format.json``
(``write_preset_chat_format``; the GGUF converters write it, with the source's own Jinja chat
template and special tokens for reference): ``preset_chat_format`` reads it, and a preset
without one keeps its family's format (a Llama preset: ``llama3``; SmolLM2's says ``chatml``).

Example:
    >>> ids = resolve_chat_format("vit_tf", tokenizer)
    >>> ids.markers["<|end|>"], ids.stop_id
    ([4], 4)
"""

import json
import os
from dataclasses import dataclass, field

from vit_tf.data.template import ASSISTANT, END, PAD, SPECIAL_TOKENS, UNK, USER

CHAT_FORMATS = {
    "vit_tf": {
        "special": (UNK, USER, ASSISTANT, END),
        "begin": (),
        USER: (USER,),
        ASSISTANT: (ASSISTANT,),
        END: (END,),
        UNK: (UNK,),
        "added": (),
    },
    "gemma": {
        "special": ("<bos>", "<start_of_turn>", "<end_of_turn>", "<unk>"),
        "begin": ("<bos>",),
        USER: ("<start_of_turn>", "user\n"),
        ASSISTANT: ("<start_of_turn>", "model\n"),
        END: ("<end_of_turn>", "\n"),
        UNK: ("<unk>",),
        "added": (),
    },
    "llama3": {
        "special": ("<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"),
        "begin": ("<|begin_of_text|>",),
        USER: ("<|start_header_id|>", "user", "<|end_header_id|>", "\n\n"),
        ASSISTANT: ("<|start_header_id|>", "assistant", "<|end_header_id|>", "\n\n"),
        END: ("<|eot_id|>",),
        UNK: ("<|eot_id|>",),  # byte-level BPE never produces an unknown token
        "added": (),
    },
    "chatml": {
        "special": ("<|im_start|>", "<|im_end|>"),
        "begin": (),
        USER: ("<|im_start|>", "user\n"),
        ASSISTANT: ("<|im_start|>", "assistant\n"),
        END: ("<|im_end|>", "\n"),
        UNK: ("<|im_end|>",),  # byte-level BPE never produces an unknown token
        "added": (),
    },
    "bert": {
        "special": ("[UNK]", USER, ASSISTANT, END),
        "begin": (),
        USER: (USER,),
        ASSISTANT: (ASSISTANT,),
        END: (END,),
        UNK: ("[UNK]",),
        "added": (USER, ASSISTANT, END),
    },
}


PRESET_CHAT_FILE = "chat_format.json"


def write_preset_chat_format(preset_dir, name, *, template=None, special_tokens=None, **extra):
    """Write ``chat_format.json`` into a preset folder: format ``name`` (a key of
    ``CHAT_FORMATS``), the source's Jinja ``template`` and ``special_tokens`` (informative)."""
    if name not in CHAT_FORMATS:
        raise ValueError(f"unknown chat format {name!r}; known: {', '.join(CHAT_FORMATS)}")
    with open(os.path.join(preset_dir, PRESET_CHAT_FILE), "w", encoding="utf-8") as f:
        json.dump({"chat_format": name, "chat_template": template,
                   "special_tokens": special_tokens or {}, **extra}, f, indent=2)


def preset_chat_format(preset, default):
    """The chat format a preset folder's ``chat_format.json`` names, else ``default`` (also for
    a preset that is not a local folder, e.g. a Kaggle handle)."""
    path = os.path.join(preset, PRESET_CHAT_FILE) if isinstance(preset, str) else ""
    if not path or not os.path.isfile(path):
        return default
    with open(path, encoding="utf-8") as f:
        name = json.load(f).get("chat_format")
    if name not in CHAT_FORMATS:
        raise ValueError(f"{path}: unknown chat format {name!r}; known: {', '.join(CHAT_FORMATS)}")
    return name


@dataclass
class ChatIds:
    """A chat format resolved against one tokenizer's vocabulary (Python ints)."""

    name: str
    base_vocabulary_size: int
    begin: list                                   # ids before every conversation
    markers: dict                                 # marker -> list of ids
    added: dict = field(default_factory=dict)     # token -> new id past the base vocabulary

    @property
    def vocabulary_size(self):
        return self.base_vocabulary_size + len(self.added)

    @property
    def stop_id(self):
        return self.markers[END][0]

    @property
    def pad_id(self):
        return 0

    def special_ids(self):
        """Marker -> one id (a marker's first id; 0 for ``[PAD]``)."""
        return {PAD: 0, **{m: ids[0] for m, ids in self.markers.items()}}


def _text_ids(tokenizer, text):
    import tensorflow as tf

    out = tokenizer(tf.constant([text]))
    rows = out.to_list() if hasattr(out, "to_list") else out
    return [int(i) for i in rows[0]]


def resolve_chat_format(name, tokenizer):
    """``ChatIds`` of format ``name`` for ``tokenizer`` (a keras-hub tokenizer with its
    vocabulary loaded); ``ValueError`` naming what the vocabulary lacks."""
    if name not in CHAT_FORMATS:
        raise ValueError(f"unknown chat format {name!r}; known: {', '.join(CHAT_FORMATS)}")
    fmt = CHAT_FORMATS[name]
    base = int(tokenizer.vocabulary_size())
    added = {t: base + i for i, t in enumerate(fmt["added"])}
    vocab = set(tokenizer.get_vocabulary())
    missing = [t for t in fmt["special"] if t not in vocab and t not in added]
    if name == "vit_tf":
        missing = [t for t in SPECIAL_TOKENS if t not in vocab]
    if missing:
        raise ValueError(f"the {type(tokenizer).__name__} vocabulary lacks {missing}, needed by "
                         f"the {name} chat format")

    def lookup(token):
        return added[token] if token in added else int(tokenizer.token_to_id(token))

    if name == "vit_tf" and lookup(PAD) != 0:
        raise ValueError("the tokenizer's [PAD] must be id 0 (batches are zero-padded)")
    markers = {}
    for marker in (UNK, USER, ASSISTANT, END):
        ids = []
        for item in fmt[marker]:
            ids.extend([lookup(item)] if item in fmt["special"] else _text_ids(tokenizer, item))
        markers[marker] = ids
    return ChatIds(name, base, [lookup(t) for t in fmt["begin"]], markers, added)


def describe(name):
    """One exchange of chat format ``name`` as the model reads it, for reports: ``{human}`` /
    ``{gpt}`` stand for the turns (our single-token markers space-separated, as tokenized)."""
    fmt = CHAT_FORMATS[name]
    if name == "vit_tf":
        return f"{USER} {{human}} {END} {ASSISTANT} {{gpt}} {END}"
    return "".join([*fmt["begin"], *fmt[USER], "{human}", *fmt[END], *fmt[ASSISTANT], "{gpt}",
                    *fmt[END]])
