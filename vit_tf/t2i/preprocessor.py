"""``TextToImagePreprocessor``: prompts -> caption token ids, images -> pixels, in TF ops.

The text side of text-to-image: the project's WordPiece tokenizer (``vit_tf.data.tokenizer``,
trained on the training captions, or any keras-hub tokenizer) and its image converter
(``vit_tf.data.image_converter``), wrapped as one serializable layer as keras-hub does for
its ``TextToImagePreprocessor``. The same object runs in ``tf.data`` (training), in
``generate`` and inside the exported SavedModel, so ids are identical on every path.

A prompt becomes at most ``max_text_length`` ids, right-padded with 0 to exactly that length
(one static shape for XLA); ``padding_mask`` is False on padding. The empty prompt is all
padding: the unconditional input of classifier-free guidance (and the default negative prompt).
A prompt longer than the context is an error naming its index, never truncated silently.

Example::

    pre = TextToImagePreprocessor(train_tokenizer(captions, 256), image_size=64, max_text_length=48)
    token_ids, padding_mask = pre.tokenize(["a large red circle."])    # (1, 48) int32, bool
"""

import keras
import tensorflow as tf

from vit_tf.data.image_converter import convert_images
from vit_tf.data.preset_io import PreprocessorPresetMixin



@keras.saving.register_keras_serializable(package="vit_tf")
class TextToImagePreprocessor(PreprocessorPresetMixin, keras.layers.Layer):
    """Tokenizer + image size + text context, as one layer (see the module docstring).

    Args:
        tokenizer: a keras-hub tokenizer (``vit_tf.data.tokenizer.train_tokenizer``'s WordPiece).
        image_size: generated (and training) images are ``image_size`` pixels a side.
        max_text_length: caption ids per prompt (the padded width).
    """

    PRESET_WHAT = "vit_tf text-to-image preset"

    def __init__(self, tokenizer, image_size=64, max_text_length=48, **kwargs):
        super().__init__(**kwargs)
        self._convert_input_args = False
        self._allow_non_tensor_positional_args = True
        self.tokenizer = tokenizer
        self.image_size = int(image_size)
        self.max_text_length = int(max_text_length)
        self.built = True

    @property
    def vocabulary_size(self):
        return int(self.tokenizer.vocabulary_size())

    def ragged_ids(self, prompts):
        """(B,) strings -> ragged (B, None) int32 ids (the empty prompt -> no ids)."""
        if tf.executing_eagerly():
            if getattr(self, "_eager_tokenize", None) is None:
                self._eager_tokenize = tf.function(
                    self._ragged_graph, input_signature=[tf.TensorSpec([None], tf.string)])
            return self._eager_tokenize(prompts)
        return self._ragged_graph(prompts)

    def _ragged_graph(self, prompts):
        tokens = self.tokenizer(tf.strings.strip(prompts))
        if not isinstance(tokens, tf.RaggedTensor):
            tokens = tf.RaggedTensor.from_tensor(tokens)
        return tf.cast(tokens, tf.int32)

    def tokenize(self, prompts):
        """(B,) prompts -> token_ids (B, max_text_length) int32, padding_mask (B, L) bool.

        Eagerly, a prompt longer than ``max_text_length`` ids raises ``ValueError`` naming it;
        in a graph, an ``InvalidArgumentError`` from an assert with the same message.
        """
        prompts = tf.convert_to_tensor(prompts, tf.string)
        single = prompts.shape.rank == 0
        prompts = prompts[None] if single else prompts
        ids = self.ragged_ids(prompts)
        lengths = tf.cast(ids.row_lengths(), tf.int32)                          # (B,)
        if tf.executing_eagerly():
            too_long = [i for i, n in enumerate(lengths.numpy()) if n > self.max_text_length]
            if too_long:
                i = too_long[0]
                raise ValueError(
                    f"prompt {i} ({prompts[i].numpy().decode()!r}) has {int(lengths[i])} "
                    f"tokens; the model's text context is {self.max_text_length}")
            checks = []
        else:
            checks = [tf.debugging.assert_less_equal(
                lengths, self.max_text_length,
                message=f"a prompt is longer than the text context ({self.max_text_length} "
                        "tokens)")]
        with tf.control_dependencies(checks):
            token_ids = ids.to_tensor(0, shape=[None, self.max_text_length])    # (B, L)
        padding_mask = tf.sequence_mask(lengths, self.max_text_length)
        if single:
            return token_ids[0], padding_mask[0]
        return token_ids, padding_mask

    def lengths(self, prompts):
        """Token count of each prompt (numpy), to check captions before training."""
        return self.ragged_ids(tf.constant(list(prompts), tf.string)).row_lengths().numpy()

    def convert_images(self, images, kind="auto"):
        """Paths / bytes / arrays -> (B, S, S, 3) float32 in [0, 255]."""
        return convert_images(images, self.image_size, kind)

    def call(self, x):
        """{"prompts", "images"} (one or a batch) -> ({"token_ids", "padding_mask"}, images)."""
        token_ids, padding_mask = self.tokenize(x["prompts"])
        return {"token_ids": token_ids, "padding_mask": padding_mask}, self.convert_images(
            x["images"])

    def get_config(self):
        return {**super().get_config(),
                "tokenizer": keras.saving.serialize_keras_object(self.tokenizer),
                "image_size": self.image_size, "max_text_length": self.max_text_length}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["tokenizer"] = keras.saving.deserialize_keras_object(config["tokenizer"])
        return cls(**config)
