"""Export a run as a SavedModel that serves text from image bytes with TensorFlow alone.

The serving signature ``serving_default``:

    inputs   images          (batch,) string   encoded PNG / JPEG / GIF / BMP bytes
             prompts         (batch,) string   the user's question (``<image>`` is optional)
             max_new_tokens  ()       int32    tokens generated at most per answer
    outputs  text            (batch,) string   the answers
             num_tokens      (batch,) int32    generated tokens per answer (stop token excluded)

Inside the graph: image decode + resize (as ``vit_tf.data.pipeline.load_image``), the chat
template (``<|user|> prompt <|end|> <|assistant|>``), WordPiece tokenization in core TF ops
(``GraphWordPiece``), KV-cached greedy decoding (the same ``Generator`` loop as ``vit-tf
generate``, traced without XLA so the batch and lengths stay dynamic) and detokenization. No
``vit_tf``, ``keras``, ``keras_hub`` or ``tensorflow_text`` import is needed to serve it:

    import tensorflow as tf
    serve = tf.saved_model.load("exported").signatures["serving_default"]
    serve(images=tf.constant([open("cat.png", "rb").read()]),
          prompts=tf.constant(["What colour is the circle?"]),
          max_new_tokens=tf.constant(16))["text"]

Bad image bytes raise ``tf.errors.InvalidArgumentError`` ("image 0 of the batch is not a PNG,
JPEG, GIF or BMP image ...") from the call; the serving process keeps running.
Inspect with ``saved_model_cli show --dir exported --tag_set serve --signature_def serving_default``.
"""

import os

import tensorflow as tf

from vit_tf.data.template import ASSISTANT, END, USER
from vit_tf.export.graph_tokenizer import GraphWordPiece
from vit_tf.inference.generate import Generator

SIGNATURE = "serving_default"
# Magic numbers of the formats tf.io.decode_image reads (bytes, compared as bytes).
_IMAGE_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a", b"BM")


def _is_image(data):
    return tf.reduce_any(tf.stack(
        [tf.equal(tf.strings.substr(data, 0, len(m)), tf.constant(m)) for m in _IMAGE_MAGIC]))


class ServingModule(tf.Module):
    """A ``tf.Module`` holding the model, the vocabulary and the serving function."""

    def __init__(self, model, tokenizer, image_size):
        super().__init__(name="vit_tf_serving")
        if hasattr(tokenizer, "special_sequences"):
            raise ValueError(
                f"vit-tf export serves vit_tf's own WordPiece tokenizer in core TF ops; this model "
                f"uses a keras-hub preset tokenizer ({tokenizer.chat_format}), which is not "
                "exported yet: use the .keras run folder with vit-tf generate / Generator")
        self.model = model
        self.model_variables = list(model.variables)  # tracked, so they are saved
        self.image_size = image_size
        self.wordpiece = GraphWordPiece(tokenizer.get_vocabulary())
        self.generator = Generator(model, tokenizer, max_new_tokens=1, jit_compile=False)
        self.ids = {t: tokenizer.token_to_id(t) for t in (USER, END, ASSISTANT)}
        self.pad_id = self.generator.encoder.pad_id
        self.max_text_length = self.generator.max_text_length

    def decode_images(self, images):
        """(batch,) bytes -> (batch, S, S, 3) float32 in [0, 255]; a clear error on bad bytes."""
        def decode(args):
            data, i = args
            check = tf.debugging.Assert(_is_image(data), [
                "image", i, "of the batch is not a PNG, JPEG, GIF or BMP image (", tf.strings.length(data),
                "bytes)"])
            with tf.control_dependencies([check]):
                image = tf.io.decode_image(data, channels=3, expand_animations=False)
            image.set_shape([None, None, 3])
            image = tf.image.resize(image, (self.image_size, self.image_size), antialias=True)
            return tf.clip_by_value(image, 0.0, 255.0)

        index = tf.range(tf.shape(images)[0])
        return tf.map_fn(decode, (images, index), fn_output_signature=tf.TensorSpec(
            [self.image_size, self.image_size, 3], tf.float32))

    def encode_prompts(self, prompts, max_new_tokens):
        """As ``Generator.encode_prompts``: (batch, width) ids, prompt mask, lengths."""
        text = tf.strings.strip(tf.strings.regex_replace(prompts, "<image>", ""))
        words = self.wordpiece.tokenize(text)                                # (batch, None)
        batch = tf.shape(prompts)[0]

        def column(token):
            return tf.RaggedTensor.from_tensor(tf.fill([batch, 1], self.ids[token]))

        ids = tf.concat([column(USER), words, column(END), column(ASSISTANT)], axis=1)
        lengths = tf.cast(ids.row_lengths(), tf.int32)                       # (batch,)
        longest = tf.reduce_max(lengths)
        check = tf.debugging.assert_less(
            longest, self.max_text_length,
            message=f"a prompt does not fit the text context of the model ({self.max_text_length} tokens)")
        with tf.control_dependencies([check]):
            width = tf.minimum((longest + 15) // 16 * 16 + max_new_tokens, self.max_text_length)
        dense = ids.to_tensor(default_value=self.pad_id)                      # (batch, longest)
        token_ids = tf.pad(dense, [[0, 0], [0, width - longest]], constant_values=self.pad_id)
        mask = tf.range(width)[None, :] < lengths[:, None]                   # (batch, width)
        return token_ids, mask, lengths

    @tf.function(input_signature=[
        tf.TensorSpec([None], tf.string, name="images"),
        tf.TensorSpec([None], tf.string, name="prompts"),
        tf.TensorSpec([], tf.int32, name="max_new_tokens"),
    ])
    def serve(self, images, prompts, max_new_tokens):
        tf.debugging.assert_equal(tf.shape(images)[0], tf.shape(prompts)[0],
                                  message="images and prompts must have the same batch size")
        tf.debugging.assert_positive(max_new_tokens, message="max_new_tokens must be >= 1")
        pixels = self.decode_images(images)
        token_ids, mask, lengths = self.encode_prompts(prompts, max_new_tokens)
        out = self.generator._generate_ids(pixels, token_ids, mask, tf.reduce_min(lengths))
        positions = tf.range(tf.shape(out)[1])[None, :]
        region = (positions >= lengths[:, None]) & (positions < (lengths + max_new_tokens)[:, None])
        is_stop = region & (out == self.ids[END])
        keep = region & (tf.cumsum(tf.cast(is_stop, tf.int32), axis=1) == 0)  # before the first end
        new_ids = tf.ragged.boolean_mask(out, keep)                           # (batch, None)
        return {"text": self.wordpiece.detokenize(new_ids),
                "num_tokens": tf.cast(new_ids.row_lengths(), tf.int32)}


def export_model(model, tokenizer, image_size, out):
    """Write the SavedModel to ``out`` (which must not exist yet); returns ``out``."""
    if os.path.exists(out):
        raise FileExistsError(f"{out} already exists; choose another --out")
    module = ServingModule(model, tokenizer, image_size)
    tf.saved_model.save(module, out, signatures={SIGNATURE: module.serve.get_concrete_function()})
    return out


def export_run(run, out):
    """Export the model of a run folder (``RUN/model.keras``, tokenizer, config)."""
    from vit_tf.training.run_dir import load_run

    model, tokenizer, config = load_run(run)
    return export_model(model, tokenizer, config.data.image_size, out)
