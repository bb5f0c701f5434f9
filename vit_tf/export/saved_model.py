"""Export a task as a SavedModel that serves text from image bytes with TensorFlow alone.

The serving signature ``serving_default``:

    inputs   images          (batch,) string   encoded PNG / JPEG / GIF / BMP bytes
             prompts         (batch,) string   the user's question (``<image>`` is optional)
             max_new_tokens  ()       int32    tokens generated at most per answer
    outputs  text            (batch,) string   the answers
             num_tokens      (batch,) int32    generated tokens per answer (stop token excluded)

Inside the graph the task's own preprocessor (``vit_tf.data.preprocessor``) converts the images
and writes the prompts in its chat format, so any tokenizer exports (our WordPiece, a preset's
SentencePiece or BPE); then KV-cached greedy decoding (the same ``Generator`` loop as ``vit-tf
generate``, traced without XLA so the batch and lengths stay dynamic) and detokenization. The
tokenizers run ``tensorflow_text`` ops, so the serving process needs ``tensorflow`` and
``tensorflow-text`` (no ``vit_tf``, ``keras`` or ``keras_hub``):

    import tensorflow as tf, tensorflow_text  # noqa: F401  (registers the tokenizer ops)
    serve = tf.saved_model.load("exported").signatures["serving_default"]
    serve(images=tf.constant([open("cat.png", "rb").read()]),
          prompts=tf.constant(["What colour is the circle?"]),
          max_new_tokens=tf.constant(16))["text"]

Bad image bytes raise ``tf.errors.InvalidArgumentError`` ("not a PNG, JPEG, GIF or BMP image")
from the call; the serving process keeps running.
Inspect with ``saved_model_cli show --dir exported --tag_set serve --signature_def serving_default``.
"""

import os

import tensorflow as tf

from vit_tf.models.generation import Generator

SIGNATURE = "serving_default"


class ServingModule(tf.Module):
    """A ``tf.Module`` holding the task (model + preprocessor) and the serving function."""

    def __init__(self, task):
        super().__init__(name="vit_tf_serving")
        self.model = task
        self.model_variables = list(task.variables)  # tracked, so they are saved
        self.preprocessor = task.preprocessor
        self.generator = Generator(task, max_new_tokens=1, jit_compile=False)
        self.pad_id = self.preprocessor.pad_id
        self.stop_id = self.preprocessor.stop_id
        self.max_text_length = self.generator.max_text_length

    def encode_prompts(self, prompts, max_new_tokens):
        """As ``Generator.encode_prompts``: (batch, width) ids, prompt mask, lengths."""
        batch = tf.shape(prompts, out_type=tf.int64)[0]
        roles = tf.RaggedTensor.from_row_lengths(tf.fill([batch], "human"), tf.ones([batch], tf.int64))
        values = tf.RaggedTensor.from_row_lengths(prompts, tf.ones([batch], tf.int64))
        ids, _ = self.preprocessor.tokenize_conversations(roles, values,
                                                          add_generation_prompt=True)
        lengths = tf.cast(ids.row_lengths(), tf.int32)                       # (batch,)
        longest = tf.reduce_max(lengths)
        check = tf.debugging.assert_less(
            longest, self.max_text_length,
            message=f"a prompt does not fit the text context of the model ({self.max_text_length} tokens)")
        room = tf.debugging.assert_less_equal(   # never a shorter answer without a word
            longest + max_new_tokens, self.max_text_length,
            message=f"a prompt plus max_new_tokens does not fit the text context of the model "
                    f"({self.max_text_length} tokens): shorten the prompt or lower "
                    "max_new_tokens")
        with tf.control_dependencies([check, room]):
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
        pixels = self.preprocessor.convert_images(images, kind="bytes")
        token_ids, mask, lengths = self.encode_prompts(prompts, max_new_tokens)
        out = self.generator._generate_ids(pixels, token_ids, mask, tf.reduce_min(lengths),
                                           max_new_tokens)
        positions = tf.range(tf.shape(out)[1])[None, :]
        region = (positions >= lengths[:, None]) & (positions < (lengths + max_new_tokens)[:, None])
        is_stop = region & tf.reduce_any(out[..., None] == list(self.generator.stop_ids), -1)
        keep = region & (tf.cumsum(tf.cast(is_stop, tf.int32), axis=1) == 0)  # before the first stop
        new_ids = tf.ragged.boolean_mask(out, keep)                           # (batch, None)
        return {"text": self.preprocessor.detokenize_graph(new_ids),
                "num_tokens": tf.cast(new_ids.row_lengths(), tf.int32)}


def export_model(task, out):
    """Write the SavedModel of ``task`` to ``out`` (which must not exist yet); returns ``out``."""
    if os.path.exists(out):
        raise FileExistsError(f"{out} already exists; choose another --out")
    if task.preprocessor is None:
        raise ValueError("export needs the task's preprocessor (tokenizer, chat format, image "
                         "size): build it with preprocessor=... or load a preset")
    module = ServingModule(task)
    tf.saved_model.save(module, out, signatures={SIGNATURE: module.serve.get_concrete_function()})
    return out


def export_run(path, out):
    """Export the task of a preset folder, run folder or ``.keras`` file."""
    from vit_tf.runs import load_task

    return export_model(load_task(path), out)
