"""Cross-modal (contrastive) pretraining of the image encoder: CLIP / SigLIP.

``DualEncoder`` (the task), ``TextEncoder`` (our small text Transformer), the two losses with
cross-replica negatives (``losses``), retrieval metrics (``retrieval``), and
``build_dual_encoder`` (the config's image encoder + a text encoder sized by
``config.pretrain``). Training: ``vit_tf.training.pretrain`` (``vit-tf pretrain``); evaluation:
``vit_tf.eval.contrastive``; the trained image tower becomes an image-encoder preset for
``model.encoder.preset`` (``vit_tf.models.encoders.preset``).
"""

import vit_tf.models.encoders  # noqa: F401  (registers the image encoders)
from vit_tf.models.contrastive.dual_encoder import AttentionPool, DualEncoder
from vit_tf.models.contrastive.losses import CLIPLoss, SigLIPLoss, clip_loss, siglip_loss
from vit_tf.models.contrastive.text_encoder import TextEncoder
from vit_tf.models.encoders.preset import build_image_encoder

__all__ = ["AttentionPool", "CLIPLoss", "DualEncoder", "SigLIPLoss", "TextEncoder",
           "build_dual_encoder", "clip_loss", "siglip_loss"]


def build_dual_encoder(config, tokenizer):
    """The dual encoder of ``config``: ``model.encoder`` (any registered encoder, or a preset
    folder) at ``data.image_size``, and a text encoder of ``pretrain.text_*`` over
    ``tokenizer``'s vocabulary."""
    p = config.pretrain
    image_encoder = build_image_encoder(config.model.encoder, config.data.image_size)
    text_encoder = TextEncoder(
        vocabulary_size=tokenizer.vocabulary_size(), max_sequence_length=p.text_max_length,
        hidden_dim=p.text_hidden_dim, num_layers=p.text_num_layers, num_heads=p.text_num_heads,
        intermediate_dim=p.text_intermediate_dim, name="text_encoder")
    model = DualEncoder(image_encoder, text_encoder, tokenizer, embed_dim=p.embed_dim,
                        sequence_length=p.text_max_length, pooling=p.pooling, loss=p.loss,
                        scale_init=p.scale_init, bias_init=p.bias_init,
                        learn_scale=p.learn_scale, name="dual_encoder")
    model.build(None)
    return model
