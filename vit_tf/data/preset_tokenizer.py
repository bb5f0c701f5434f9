"""A keras-hub preset's own tokenizer, with our chat template mapped onto the family's chat format.

Our template (``vit_tf.data.template``) writes a conversation as segments: the role markers
``<|user|>`` / ``<|assistant|>``, the turn text, ``<|end|>``. With our trained WordPiece those
markers are single reserved ids. A pretrained model has its own vocabulary and chat format, so a
``PresetTokenizer`` wraps the preset's tokenizer and maps each marker to a *sequence* of ids:

    gemma   <bos> <start_of_turn>user\\n {text} <end_of_turn>\\n <start_of_turn>model\\n {answer} <end_of_turn>\\n
    llama3  <|begin_of_text|> <|start_header_id|>user<|end_header_id|>\\n\\n {text} <|eot_id|> ...assistant...
    bert    {text} with <|user|>, <|assistant|>, <|end|> appended to the vocabulary as 3 new ids
            (BERT has no chat format; its text only feeds our decoder's input embeddings)

The first id of ``<|end|>``'s sequence (``<end_of_turn>``, ``<|eot_id|>``) is the stop token;
the assistant's text and the whole ``<|end|>`` sequence are trained, as with our tokenizer.
Padding is id 0 for every family: padded positions are masked (``padding_mask``, zero loss
weight), so the token there never matters. Each segment is tokenized on its own (exact loss
masks); a preset tokenizer that merges across a segment boundary would tokenize the joined
string slightly differently, which the chat markers (all ending in a special token or newline)
avoid.

The run folder's ``tokenizer/`` holds the preset tokenizer (``save_to_preset``: tokenizer.json +
assets) and ``chat_format.json``; ``vit_tf.data.tokenizer.load_tokenizer`` reads either kind.

Example:
    >>> tok = PresetTokenizer.from_preset("/models/gemma_tiny", "gemma")
    >>> SegmentEncoder(tok).encode([prompt_segments([{"from": "human", "value": "Hi"}])])
"""

import json
import os

import keras
import keras_hub

from vit_tf.data.template import ASSISTANT, END, PAD, UNK, USER

CHAT_FORMAT_FILE = "chat_format.json"
TOKENIZER_FILE = "tokenizer.json"  # written by keras-hub's save_to_preset

# keras-hub causal-LM decoders (``model.decoder.name``, vit_tf.models.hub_lm_decoder) -> their
# chat format (a key of CHAT_FORMATS). Kept on the data side: the tokenizer needs it, and the
# models import it from here (vit_tf.models.compat), not the reverse.
HUB_LM_CHAT_FORMATS = {"gemma": "gemma", "llama": "llama3"}

# Per family: ids placed before every text ("begin"), and each marker as a list of items. An item
# in "special" is looked up as one vocabulary entry (it must exist); any other item is tokenized.
CHAT_FORMATS = {
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


class PresetTokenizer:
    """A preset's keras-hub tokenizer + our chat markers (duck-types the WordPiece tokenizer).

    Args:
        tokenizer: the keras-hub tokenizer (``keras_hub.tokenizers.Tokenizer.from_preset``).
        chat_format: a key of ``CHAT_FORMATS`` (``gemma``, ``llama3``, ``bert``).
        preset: where it came from (recorded in ``chat_format.json``).

    Attributes used by ``SegmentEncoder``: ``special_sequences`` (marker -> list of ids),
    ``chat_special_ids`` (marker -> one id: the stop id for ``<|end|>``, 0 for ``[PAD]``) and
    ``begin_ids`` (ids before every text).
    """

    def __init__(self, tokenizer, chat_format, preset=""):
        if chat_format not in CHAT_FORMATS:
            raise ValueError(f"unknown chat format {chat_format!r}; known: {', '.join(CHAT_FORMATS)}")
        self.tokenizer = tokenizer
        self.chat_format = chat_format
        self.preset = preset
        fmt = CHAT_FORMATS[chat_format]
        self.base_size = int(tokenizer.vocabulary_size())
        self.added = {t: self.base_size + i for i, t in enumerate(fmt["added"])}
        vocab = set(tokenizer.get_vocabulary())
        missing = [t for t in fmt["special"] if t not in vocab and t not in self.added]
        if missing:
            raise ValueError(f"preset {preset!r}: its {type(tokenizer).__name__} vocabulary lacks "
                             f"{missing}, needed by the {chat_format} chat format")
        self.begin_ids = [self.token_to_id(t) for t in fmt["begin"]]
        self.special_sequences = {PAD: [0]}
        for marker in (UNK, USER, ASSISTANT, END):
            ids = []
            for item in fmt[marker]:
                if item in fmt["special"]:
                    ids.append(self.token_to_id(item))
                else:
                    ids.extend(int(i) for i in self._tokenize_one(item))
            self.special_sequences[marker] = ids
        self.chat_special_ids = {t: ids[0] for t, ids in self.special_sequences.items()}

    @classmethod
    def from_preset(cls, preset, chat_format):
        """Load the tokenizer of a keras-hub preset (name or local folder)."""
        return cls(keras_hub.tokenizers.Tokenizer.from_preset(preset), chat_format, preset)

    def _tokenize_one(self, text):
        import tensorflow as tf

        out = self.tokenizer(tf.constant([text]))
        rows = out.to_list() if hasattr(out, "to_list") else out
        return [int(i) for i in rows[0]]

    # ----- the interface the rest of vit_tf uses (as keras-hub's WordPieceTokenizer) -----

    def __call__(self, texts):
        return self.tokenizer(texts)

    def vocabulary_size(self):
        return self.base_size + len(self.added)

    def get_vocabulary(self):
        return list(self.tokenizer.get_vocabulary()) + list(self.added)

    def token_to_id(self, token):
        if token in self.added:
            return self.added[token]
        return int(self.tokenizer.token_to_id(token))

    def id_to_token(self, id):
        id = int(id)
        if id >= self.base_size:
            return list(self.added)[id - self.base_size]
        return self.tokenizer.id_to_token(id)

    def detokenize(self, ids):
        """Batch of id lists -> batch of strings; our added marker ids are dropped."""
        import tensorflow as tf

        if isinstance(ids, (list, tuple)):
            ids = tf.ragged.constant(ids, dtype=tf.int32)
        if self.added:
            ids = tf.ragged.boolean_mask(ids, ids < self.base_size)
        return self.tokenizer.detokenize(ids)

    # ----- run folder -----

    def save(self, directory):
        os.makedirs(directory, exist_ok=True)
        self.tokenizer.save_to_preset(directory)
        with open(os.path.join(directory, CHAT_FORMAT_FILE), "w") as f:
            json.dump({"chat_format": self.chat_format, "preset": self.preset}, f, indent=2)

    @classmethod
    def load(cls, directory):
        path = os.path.join(directory, CHAT_FORMAT_FILE)
        with open(path) as f:
            try:
                info = json.load(f)
                chat_format = info["chat_format"]
            except (json.JSONDecodeError, KeyError, TypeError) as e:
                raise ValueError(f"{path}: expected {{\"chat_format\": ...}} ({e})") from None
        # The folder holds only the tokenizer (tokenizer.json + assets/), not the backbone's
        # config.json that Tokenizer.from_preset checks, so rebuild it from its own config.
        config_path = os.path.join(directory, TOKENIZER_FILE)
        if not os.path.exists(config_path):
            raise FileNotFoundError(f"{config_path}: no keras-hub tokenizer config")
        with open(config_path) as f:
            tokenizer = keras.saving.deserialize_keras_object(json.load(f))
        tokenizer.load_preset_assets(directory)
        return cls(tokenizer, chat_format, info.get("preset", ""))


def is_preset_tokenizer_dir(directory):
    return os.path.exists(os.path.join(directory, CHAT_FORMAT_FILE))


def tokenizer_for_config(config):
    """The preset tokenizer a config needs, or None when vit_tf trains its own WordPiece.

    A keras-hub LM decoder brings its tokenizer (``model.decoder.preset``); a pretrained text
    embedding brings BERT's (``model.text_embedding.preset``).
    """
    m = config.model
    if m.decoder.name in HUB_LM_CHAT_FORMATS:
        return PresetTokenizer.from_preset(m.decoder.preset, HUB_LM_CHAT_FORMATS[m.decoder.name])
    text = getattr(m, "text_embedding", None)
    if text is not None and text.name == "keras_hub":
        return PresetTokenizer.from_preset(text.preset, "bert")
    return None
