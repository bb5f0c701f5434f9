"""Run in a fresh process (``python -I``): load a text-to-image SavedModel with TensorFlow and
tensorflow-text only, and print the PNGs' pixels for the given prompts as JSON."""

import json
import sys

sys.modules["vit_tf"] = None        # importing either fails: the export must not need them
sys.modules["keras_hub"] = None

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_text  # noqa: E402,F401

saved, *prompts = sys.argv[1:]
loaded = tf.saved_model.load(saved)
default = loaded.signatures["serving_default"](prompts=tf.constant(prompts))["png"]
full = loaded.signatures["generate"](prompts=tf.constant(prompts),
                                     negative_prompts=tf.constant(["a small green triangle."] * len(prompts)),
                                     seed=tf.constant(7, tf.int64),
                                     guidance_scale=tf.constant(3.0))["png"]
try:
    loaded.signatures["serving_default"](prompts=tf.constant(["a red circle " * 40]))
    too_long = "accepted"
except tf.errors.InvalidArgumentError as e:
    too_long = str(e)
decode = [np.asarray(tf.io.decode_png(p)).tolist() for p in (*default, *full)]
print("RESULT " + json.dumps({"images": decode, "too_long": too_long}))
