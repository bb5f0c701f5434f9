"""Subword tokenizer: keras-hub WordPiece, trained on the training texts.

keras-hub's ``WordPieceTokenizer`` runs as TF ops, so the same tokenizer works in ``tf.data``
and inside an exported SavedModel. Special tokens are reserved at the start of the vocabulary
([PAD] = 0) and looked up by id by the preprocessor (``vit_tf.data.preprocessor``), which never
lets the tokenizer see them as text; it also saves the vocabulary with the model.

Example:
    >>> tok = train_tokenizer(["a red circle", "a blue square"], vocabulary_size=64)
    >>> VisionLanguagePreprocessor(tok, "vit_tf", image_size=64, max_text_length=160)
"""

import keras_hub

from vit_tf.data.template import SPECIAL_TOKENS, UNK, strip_image_placeholder


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
        vocabulary=list(vocabulary), lowercase=True, oov_token=UNK, dtype="int32"
    )
