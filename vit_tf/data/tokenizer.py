"""Subword tokenizer: keras-hub WordPiece, trained on the training texts and saved with the model.

keras-hub's ``WordPieceTokenizer`` runs as TF ops, so the same tokenizer works in ``tf.data``
and inside an exported SavedModel. Special tokens are reserved at the start of the vocabulary
and looked up by id; ``encode_segments`` never lets the tokenizer see them as text.

Example:
    >>> tok = train_tokenizer(["a red circle", "a blue square"], vocabulary_size=64)
    >>> ids, mask = encode_segments(tok, conversation_segments(record["conversations"]))
"""

import os

import keras_hub
import numpy as np

from vit_tf.data.template import END, PAD, SPECIAL_TOKENS, strip_image_placeholder

VOCAB_FILE = "vocabulary.txt"


def conversation_texts(records):
    """Every non-special text of the records (what the vocabulary is learned from)."""
    for record in records:
        for turn in record["conversations"]:
            yield strip_image_placeholder(turn["value"])


def train_tokenizer(texts, vocabulary_size):
    """Learn a lowercase WordPiece vocabulary (at most ``vocabulary_size`` entries)."""
    import tensorflow as tf

    # Batched: keras-hub counts words per dataset element in Python, so one text per element
    # took ~40 s for the shapes world's 81k texts; batches of 1024 give the same counts (and
    # the same vocabulary) in ~1 s.
    data = tf.data.Dataset.from_tensor_slices(list(texts)).batch(1024)
    vocab = keras_hub.tokenizers.compute_word_piece_vocabulary(
        data, vocabulary_size=vocabulary_size, lowercase=True, reserved_tokens=list(SPECIAL_TOKENS)
    )
    return make_tokenizer(vocab)


def make_tokenizer(vocabulary):
    return keras_hub.tokenizers.WordPieceTokenizer(
        vocabulary=list(vocabulary), lowercase=True, oov_token="[UNK]", dtype="int32"
    )


def save_tokenizer(tokenizer, directory):
    if hasattr(tokenizer, "special_sequences"):  # a keras-hub preset's tokenizer
        tokenizer.save(directory)
        return
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, VOCAB_FILE), "w") as f:
        f.write("\n".join(tokenizer.get_vocabulary()) + "\n")


def load_tokenizer(directory):
    """Our WordPiece (``vocabulary.txt``) or a preset's tokenizer (``chat_format.json``)."""
    from vit_tf.data.preset_tokenizer import PresetTokenizer, is_preset_tokenizer_dir

    if is_preset_tokenizer_dir(directory):
        return PresetTokenizer.load(directory)
    path = os.path.join(directory, VOCAB_FILE)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no tokenizer vocabulary (is this a vit_tf run folder?)")
    with open(path) as f:
        vocab = [line.rstrip("\n") for line in f if line.rstrip("\n")]
    missing = [t for t in SPECIAL_TOKENS if t not in vocab]
    if missing:
        raise ValueError(f"{path}: vocabulary lacks special tokens {missing}")
    return make_tokenizer(vocab)


def special_ids(tokenizer):
    """Marker -> one id (a preset tokenizer maps a marker to a sequence; this is its first id)."""
    if hasattr(tokenizer, "chat_special_ids"):
        return dict(tokenizer.chat_special_ids)
    return {t: tokenizer.token_to_id(t) for t in SPECIAL_TOKENS}


class SegmentEncoder:
    """Tokenizes segment lists in bulk: every distinct text goes through the tokenizer once.

    A preset tokenizer (``vit_tf.data.preset_tokenizer``) maps each marker to a sequence of ids
    and puts ``begin_ids`` (e.g. ``<bos>``, untrained) before every text.
    """

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.special = special_ids(tokenizer)
        self.sequences = getattr(tokenizer, "special_sequences", None) or {
            t: [i] for t, i in self.special.items()}
        self.begin = list(getattr(tokenizer, "begin_ids", ()))
        self.pad_id = self.special[PAD]
        self.end_id = self.special[END]
        self._cache = {}

    def _encode_texts(self, texts):
        new = sorted({t for t in texts if t not in self._cache})
        if new:
            import tensorflow as tf

            out = self.tokenizer(tf.constant(new))
            rows = out.to_list() if hasattr(out, "to_list") else out  # eager keras-hub gives lists
            for text, ids in zip(new, rows):
                self._cache[text] = [int(i) for i in ids]

    def encode(self, segment_lists):
        """-> list of (token_ids, trained_mask) pairs of Python lists, one per segment list."""
        self._encode_texts(s.text for segs in segment_lists for s in segs if not s.special)
        out = []
        for segments in segment_lists:
            ids, mask = list(self.begin), [False] * len(self.begin)
            for s in segments:
                piece = self.sequences[s.text] if s.special else self._cache[s.text]
                ids.extend(piece)
                mask.extend([s.trained] * len(piece))
            out.append((ids, mask))
        return out


def encode_segments(tokenizer, segments):
    """Token ids and trained mask of one segment list (numpy int32 / bool)."""
    ids, mask = SegmentEncoder(tokenizer).encode([segments])[0]
    return np.asarray(ids, np.int32), np.asarray(mask, bool)
