"""Run in a FRESH Python process by test_saved_model.py: serve an exported model with TensorFlow
and tensorflow-text only.

Blocks ``vit_tf`` and ``keras_hub`` before anything is imported (``keras`` comes with
``tensorflow``, which depends on it), proves the block works, imports ``tensorflow_text`` (it registers the tokenizer ops the graph uses), then loads
the SavedModel and prints JSON: the answers, the error of bad image bytes (and that the process
still serves afterwards), and the error of a too-long prompt.
Usage: python serve_check.py SAVED_MODEL_DIR IMAGE [IMAGE ...] -- PROMPT [PROMPT ...]
"""

import importlib.abc
import json
import sys

BLOCKED = ("vit_tf", "keras_hub")


class _Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{name} is blocked in this process")
        return None


sys.meta_path.insert(0, _Blocker())
sys.path = [p for p in sys.path if p not in ("", ".")]
blocked = {}
for name in BLOCKED:
    try:
        __import__(name)
        blocked[name] = False
    except ImportError:
        blocked[name] = True

import tensorflow as tf  # noqa: E402
import tensorflow_text  # noqa: E402,F401  (registers the tokenizer ops)

args = sys.argv[1:]
split = args.index("--")
directory, image_paths, prompts = args[0], args[1:split], args[split + 1:]
serve = tf.saved_model.load(directory).signatures["serving_default"]
images = [open(p, "rb").read() for p in image_paths]


def call(images, prompts, n=8):
    out = serve(images=tf.constant(images), prompts=tf.constant(prompts),
                max_new_tokens=tf.constant(n, tf.int32))
    return [t.decode("utf-8") for t in out["text"].numpy()], out["num_tokens"].numpy().tolist()


texts, counts = call(images, prompts)
result = {"blocked": blocked, "texts": texts, "num_tokens": counts,
          "loaded_modules": sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)}
try:
    call([b"this is not an image", images[0]], prompts[:2] if len(prompts) > 1 else prompts * 2)
    result["bad_bytes_error"] = None
except tf.errors.InvalidArgumentError as e:
    result["bad_bytes_error"] = e.message
try:
    call(images[:1], ["is it big " * 40])
    result["long_prompt_error"] = None
except tf.errors.InvalidArgumentError as e:
    result["long_prompt_error"] = e.message
result["after_errors"] = call(images, prompts)[0]
print("RESULT " + json.dumps(result))
