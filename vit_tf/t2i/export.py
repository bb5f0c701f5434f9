"""Export a text-to-image task as a SavedModel that turns prompt strings into PNG bytes.

Signatures (TensorFlow + tensorflow-text only in the serving process, as for the VLM export):

    serving_default  prompts (batch,) string                          -> png (batch,) string
    generate         prompts (batch,) string, negative_prompts (batch,) string ("" = none),
                     seed () int64, guidance_scale () float32        -> png (batch,) string

``serving_default`` uses seed 0, no negative prompt and the task's own guidance scale; both use
the task's ``num_steps`` (fixed when exporting: the decoding loop is unrolled). Inside the
graph: the task's preprocessor tokenizes (a prompt longer than the text context fails with a
message), the task's sampler runs (without XLA, so the batch stays dynamic), and each image is
PNG-encoded. Image i of a call uses seed ``seed + i``, as ``task.generate`` does, and the
pixels equal ``task.generate(..., jit_compile=False)``'s (tested in a fresh process).

    import tensorflow as tf, tensorflow_text  # noqa: F401  (registers the tokenizer ops)
    serve = tf.saved_model.load("t2i_export").signatures["serving_default"]
    png = serve(prompts=tf.constant(["a large red circle."]))["png"][0].numpy()
"""

import os

import tensorflow as tf

SIGNATURE = "serving_default"


class TextToImageServing(tf.Module):
    """Holds the task (its variables are saved) and the two serving functions."""

    def __init__(self, task, num_steps=None):
        super().__init__(name="vit_tf_t2i_serving")
        # The task itself is not tracked (its Keras objects need not be serialized, only the
        # variables the serving functions read, tracked below).
        self.__dict__["task"] = task
        self.__dict__["preprocessor"] = task.preprocessor
        self.task_variables = list(task.variables)
        self.num_steps = int(num_steps or task.num_steps)
        self.default_scale = float(task.guidance_scale)

    def _png(self, prompts, negative_prompts, seed, guidance_scale):
        tf.debugging.assert_equal(tf.shape(prompts)[0], tf.shape(negative_prompts)[0],
                                  message="prompts and negative_prompts must have the same size")
        ids, mask = self.preprocessor.tokenize(prompts)
        negative_ids, negative_mask = self.preprocessor.tokenize(negative_prompts)
        seeds = tf.range(tf.shape(prompts, out_type=tf.int64)[0], dtype=tf.int64) + seed
        images = self.task.sample(ids, mask, negative_ids, negative_mask, seeds, guidance_scale,
                                  self.num_steps)
        pixels = tf.cast(tf.clip_by_value(tf.round(images), 0.0, 255.0), tf.uint8)
        return {"png": tf.map_fn(tf.io.encode_png, pixels, fn_output_signature=tf.string)}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="prompts")])
    def serve(self, prompts):
        return self._png(prompts, tf.fill(tf.shape(prompts), ""), tf.constant(0, tf.int64),
                         tf.constant(self.default_scale, tf.float32))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="prompts"),
                                  tf.TensorSpec([None], tf.string, name="negative_prompts"),
                                  tf.TensorSpec([], tf.int64, name="seed"),
                                  tf.TensorSpec([], tf.float32, name="guidance_scale")])
    def serve_full(self, prompts, negative_prompts, seed, guidance_scale):
        return self._png(prompts, negative_prompts, seed, guidance_scale)


def export_text_to_image(task, out, num_steps=None):
    """Write the SavedModel of ``task`` to ``out`` (which must not exist); returns ``out``."""
    if os.path.exists(out):
        raise FileExistsError(f"{out} already exists; choose another --out")
    if task.preprocessor is None:
        raise ValueError("export needs the task's preprocessor; load a preset")
    module = TextToImageServing(task, num_steps)
    tf.saved_model.save(module, out, signatures={
        SIGNATURE: module.serve.get_concrete_function(),
        "generate": module.serve_full.get_concrete_function()})
    return out
