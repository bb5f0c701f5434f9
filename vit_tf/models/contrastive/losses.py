"""The CLIP softmax loss and the SigLIP sigmoid loss, with negatives gathered across replicas.

Both take L2-normalised image and text embeddings of the LOCAL batch (b, d) and score each local
row against the GLOBAL batch (B = replicas x b): under ``tf.distribute`` the other replicas'
embeddings and pair ids are all-gathered (``gather_replicas``; the gather has a gradient, so
every replica's embeddings also learn from the rows the other replicas scored). They return
one loss per local example, so Keras' reduction (mean over the local batch, divided by the
number of replicas, gradients summed by the optimizer) gives exactly one device's loss on the
global batch.

Positives. Pair j is a positive for pair i when both have the same image or the same text
(``image_ids`` / ``text_ids``, integers; a batch of distinct pairs is the identity). The shapes
world repeats texts ("a small red circle.") across images, and an image can come with several
texts; calling those negatives would teach the model to separate what it cannot tell apart.

    CLIP    logits = s X Y^T (b, B);  targets = positives / row count;
            loss_i = (CE(logits_i2t[i], targets[i]) + CE(logits_t2i[i], targets[i])) / 2
    SigLIP  logits = s X Y^T + b;     z = +1 on positives, -1 elsewhere;
            loss_i = -sum_j log sigmoid(z_ij logits_ij)      (Zhai et al. 2023, eq. 1)

with the scale s = exp(t) (t learnable, capped at log 100 as in CLIP) and the bias b. The
SigLIP form follows keras-hub's ``SigLIPLoss`` (big_vision's: sum over the row, no 1/B inside),
with the gather and the multi-positive labels added; it needs only the texts from other
replicas, CLIP needs both sides.

Example:
    >>> loss = SigLIPLoss()
    >>> loss({"image_ids": ids, "text_ids": ids},
    ...      {"image_embeddings": x, "text_embeddings": y, "logit_scale": t, "logit_bias": b})
"""

import math

import keras
import tensorflow as tf
from keras import ops

MAX_LOG_SCALE = math.log(100.0)
MAX_PAIR_ID = 2**24   # ids pass through float32 in Keras' Loss.__call__: exact below this


def gather_replicas(x):
    """(b, ...) of this replica -> ((R*b, ...) in replica order, this replica's row offset).
    One device (or a cross-replica call): ``x`` and 0."""
    ctx = tf.distribute.get_replica_context()
    if ctx is None or ctx.num_replicas_in_sync == 1:
        return x, 0
    offset = tf.cast(ctx.replica_id_in_sync_group, tf.int32) * tf.shape(x)[0]
    return ctx.all_gather(x, axis=0), offset


def default_pair_ids(batch_size):
    """Ids that make every pair of the global batch distinct (positives = the diagonal)."""
    ctx = tf.distribute.get_replica_context()
    replica = 0 if ctx is None else tf.cast(ctx.replica_id_in_sync_group, tf.int32)
    return tf.range(batch_size, dtype=tf.int32) + replica * batch_size


def positive_mask(image_ids, text_ids, all_image_ids, all_text_ids):
    """(b,), (b,), (B,), (B,) -> (b, B) float: same image or same text."""
    same_image = ops.equal(image_ids[:, None], all_image_ids[None, :])
    same_text = ops.equal(text_ids[:, None], all_text_ids[None, :])
    return ops.cast(ops.logical_or(same_image, same_text), "float32")


def logit_scale_value(logit_scale):
    """exp(t), with t capped at log 100 (CLIP's clamp: keeps the softmax from saturating)."""
    return ops.exp(ops.minimum(ops.cast(logit_scale, "float32"), MAX_LOG_SCALE))


def _parts(y_true, y_pred):
    x = ops.cast(y_pred["image_embeddings"], "float32")   # (b, d), unit rows
    y = ops.cast(y_pred["text_embeddings"], "float32")
    image_ids = ops.cast(y_true["image_ids"], "int32")
    text_ids = ops.cast(y_true["text_ids"], "int32")
    all_image_ids, _ = gather_replicas(image_ids)
    all_text_ids, _ = gather_replicas(text_ids)
    positives = positive_mask(image_ids, text_ids, all_image_ids, all_text_ids)   # (b, B)
    scale = logit_scale_value(y_pred["logit_scale"])
    return x, y, positives, scale


def clip_loss(y_true, y_pred):
    """Per local example: the mean of the image->text and text->image cross-entropies against
    the global batch, targets spread evenly over each row's positives. (b,)"""
    x, y, positives, scale = _parts(y_true, y_pred)
    all_x, _ = gather_replicas(x)
    all_y, _ = gather_replicas(y)
    targets = positives / ops.sum(positives, axis=1, keepdims=True)
    image_to_text = scale * ops.matmul(x, ops.transpose(all_y))     # (b, B)
    text_to_image = scale * ops.matmul(y, ops.transpose(all_x))     # (b, B)
    ce_i2t = -ops.sum(targets * ops.log_softmax(image_to_text, axis=-1), axis=-1)
    ce_t2i = -ops.sum(targets * ops.log_softmax(text_to_image, axis=-1), axis=-1)
    return 0.5 * (ce_i2t + ce_t2i)


def siglip_loss(y_true, y_pred):
    """Per local image: -sum over the global batch's texts of log sigmoid(z * logit). (b,)"""
    x, y, positives, scale = _parts(y_true, y_pred)
    all_y, _ = gather_replicas(y)
    logits = scale * ops.matmul(x, ops.transpose(all_y)) + ops.cast(y_pred["logit_bias"],
                                                                   "float32")
    signs = 2.0 * positives - 1.0
    return -ops.sum(ops.log_sigmoid(signs * logits), axis=-1)


@keras.saving.register_keras_serializable(package="vit_tf")
class ContrastiveLoss(keras.losses.Loss):
    """A Keras loss over ``y_true`` = {"image_ids", "text_ids"} and ``y_pred`` =
    {"image_embeddings", "text_embeddings", "logit_scale", "logit_bias"}; per-example values
    reduced by Keras (mean over the local batch, scaled for ``tf.distribute``). Keras casts the
    ids to float32 on the way in; they are cast back, exact below 2**24 (``MAX_PAIR_ID``)."""

    kind = None

    def __init__(self, name=None, **kwargs):
        super().__init__(name=name or f"{self.kind}_loss", **kwargs)


@keras.saving.register_keras_serializable(package="vit_tf")
class CLIPLoss(ContrastiveLoss):
    kind = "clip"

    def call(self, y_true, y_pred):
        return clip_loss(y_true, y_pred)


@keras.saving.register_keras_serializable(package="vit_tf")
class SigLIPLoss(ContrastiveLoss):
    kind = "siglip"

    def call(self, y_true, y_pred):
        return siglip_loss(y_true, y_pred)


LOSSES = {"clip": CLIPLoss, "siglip": SigLIPLoss}


def get_loss(name):
    if name not in LOSSES:
        raise ValueError(f"pretrain.loss={name!r}: expected one of {', '.join(LOSSES)}")
    return LOSSES[name]()
