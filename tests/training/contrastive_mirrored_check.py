"""Run by test_contrastive_distribute.py in a fresh process (logical devices must be set before
TensorFlow starts): the CLIP and SigLIP losses and their gradients on one global batch, on one
device and under MirroredStrategy over 2 logical CPUs (negatives gathered across replicas), and
DualEncoder.compute_loss with its default pair ids both ways. Prints one ``RESULT {json}`` line.

    python tests/training/contrastive_mirrored_check.py
"""

import json

import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

import keras  # noqa: E402
import numpy as np  # noqa: E402

from tests.helpers import tiny_config, tiny_tokenizer  # noqa: E402
from vit_tf.models.contrastive import build_dual_encoder  # noqa: E402
from vit_tf.models.contrastive.losses import CLIPLoss, SigLIPLoss  # noqa: E402

B, F, D = 6, 5, 4
rng = np.random.default_rng(0)
FEATURES = {"image": rng.normal(size=(B, F)).astype("float32"),
            "text": rng.normal(size=(B, F)).astype("float32")}
# Pairs 0 and 3 share a text and land on different replicas (rows 0-2 and 3-5): the positive
# is only seen through the gather.
IDS = {"image_ids": np.arange(B, dtype="int32"),
       "text_ids": np.array([0, 1, 2, 0, 4, 5], "int32")}
W0 = {k: rng.normal(size=(F, D)).astype("float32") for k in ("image", "text")}


def loss_and_grads(strategy, loss):
    with strategy.scope():
        w = {k: tf.Variable(v) for k, v in W0.items()}
        t = tf.Variable(np.log(10.0).astype("float32"))
        b = tf.Variable(-2.0)

    def step(image, text, image_ids, text_ids):
        with tf.GradientTape() as tape:
            def embed(x, k):
                e = x @ w[k]
                return e / tf.norm(e, axis=-1, keepdims=True)

            value = loss({"image_ids": image_ids, "text_ids": text_ids},
                         {"image_embeddings": embed(image, "image"),
                          "text_embeddings": embed(text, "text"), "logit_scale": t,
                          "logit_bias": b})
        return value, tape.gradient(value, [w["image"], w["text"], t, b],
                                    unconnected_gradients=tf.UnconnectedGradients.ZERO)

    arrays = [FEATURES["image"], FEATURES["text"], IDS["image_ids"], IDS["text_ids"]]
    n = strategy.num_replicas_in_sync
    if n == 1:
        value, grads = step(*arrays)
    else:
        def part(ctx):
            r = ctx.replica_id_in_sync_group
            return [a[r * B // n:(r + 1) * B // n] for a in arrays]

        inputs = strategy.experimental_distribute_values_from_function(part)
        value, grads = strategy.run(tf.function(step), args=tuple(inputs))
        # Keras' reduction: each replica's mean is divided by n and the optimizer sums.
        value = strategy.reduce("SUM", value, axis=None)
        grads = [strategy.reduce("SUM", g, axis=None) for g in grads]
    return float(value), [np.asarray(g).tolist() for g in grads]


def model_losses(strategy):
    """DualEncoder.compute_loss on one batch WITHOUT pair ids (each replica makes its own, which
    must not collide with the other's): the whole batch outside any strategy, and the two
    halves through strategy.run, summed as Keras' reduction does."""
    config = tiny_config(pretrain__text_hidden_dim=16, pretrain__text_intermediate_dim=32,
                         pretrain__text_num_heads=2, pretrain__text_num_layers=1,
                         pretrain__embed_dim=8, pretrain__text_max_length=8)
    keras.utils.set_random_seed(0)
    with strategy.scope():
        model = build_dual_encoder(config, tiny_tokenizer())
    ids, mask = model.tokenize(["the circle is red", "a blue triangle on the left",
                                "yes it is big", "there are two squares"])
    batch = {"images": np.random.default_rng(1).uniform(0, 255, (4, 16, 16, 3)).astype("float32"),
             "token_ids": ids, "padding_mask": mask}

    def value(x):
        return model.compute_loss(x=x, y_pred=model(x))

    one = float(value(batch))
    halves = strategy.experimental_distribute_values_from_function(
        lambda ctx: {k: v[2 * ctx.replica_id_in_sync_group:2 * ctx.replica_id_in_sync_group + 2]
                     for k, v in batch.items()})
    two = float(strategy.reduce("SUM", strategy.run(tf.function(value), args=(halves,)),
                                axis=None))
    return one, two


def main():
    one = tf.distribute.get_strategy()
    two = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    result = {"replicas": two.num_replicas_in_sync}
    for name, loss in (("clip", CLIPLoss()), ("siglip", SigLIPLoss())):
        result[name] = {"one": loss_and_grads(one, loss), "two": loss_and_grads(two, loss)}
    result["model"] = model_losses(two)
    print("RESULT " + json.dumps(result))


if __name__ == "__main__":
    main()
