"""keras-hub CLIP and SigLIP vision towers as image encoders: per-patch tokens, not pooled."""

import keras
import keras_hub
from keras import ops

from vit_tf.models.encoders.base import ImageEncoder
from vit_tf.registry import IMAGE_ENCODERS

_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


class KerasHubVisionEncoder(ImageEncoder):
    """A keras-hub vision tower loaded with ``from_preset`` (a preset name or a local folder).

    The preset may hold a full CLIP / SigLIP backbone (its ``vision_encoder`` is used) or the
    vision encoder alone. Images (batch, S, S, 3) in [0, 255] are resized to the tower's input
    size and normalised as the family expects.

    Args:
        image_size: the pipeline's image side S.
        preset: keras-hub preset name or local preset folder (read when created from config).
        trainable: ``False`` freezes the tower.
        encoder_config: the tower's serialized config; set by ``get_config`` so that a saved
            ``.keras`` model rebuilds the tower without the preset (weights come from the file).

    Call: -> (batch, num_patches, tower_hidden_dim).
    """

    family = None  # "clip" or "siglip"
    backbone_class = None
    encoder_class = None

    def __init__(self, image_size, preset="", trainable=True, encoder_config=None, **kwargs):
        super().__init__(image_size, trainable=trainable, **kwargs)
        self.preset = preset
        if encoder_config is not None:
            self.tower = keras.saving.deserialize_keras_object(encoder_config)
        elif preset:
            self.tower = self._load(preset)
        else:
            raise ValueError(f"the {self.family} image encoder needs model.encoder.preset "
                             "(a keras-hub preset name or a local preset folder)")
        self.tower.trainable = trainable
        self.input_side = self.tower.image_shape[0]
        self.hidden_dim = self.tower.hidden_dim
        grid = self.input_side // self.tower.patch_size
        self.num_tokens = grid * grid

    @classmethod
    def from_section(cls, section, *, image_size, name="image_encoder"):
        """``section`` fields: preset (a keras-hub preset name or local folder) and trainable."""
        return cls(image_size, preset=section.preset, trainable=section.trainable, name=name)

    def _load(self, preset):
        model = keras_hub.models.Backbone.from_preset(preset)
        if isinstance(model, self.backbone_class):
            return model.vision_encoder
        if isinstance(model, self.encoder_class):
            return model
        raise ValueError(f"preset {preset!r} holds a {type(model).__name__}, not a "
                         f"{self.backbone_class.__name__} or {self.encoder_class.__name__}")

    def build(self, input_shape):
        self.built = True

    def _normalise(self, images):
        x = ops.cast(images, self.compute_dtype)
        if self.input_side != self.image_size:
            x = ops.image.resize(x, (self.input_side, self.input_side), interpolation="bicubic")
        if self.family == "clip":
            return (x / 255.0 - ops.convert_to_tensor(_CLIP_MEAN)) / ops.convert_to_tensor(_CLIP_STD)
        return x / 127.5 - 1.0  # SigLIP: [-1, 1]

    def _sequence(self, images, training):
        out = self.tower({"images": images}, training=training)
        if isinstance(out, dict):
            out = out["sequence_output"]
        return out  # (batch, 1 + patches, hidden) for CLIP: class token first

    def call(self, images, training=None):
        out = self._sequence(self._normalise(images), training if self.trainable else False)
        return out[:, -self.num_tokens:]  # per-patch tokens (batch, patches, hidden)

    def get_config(self):
        return {**super().get_config(), "image_size": self.image_size, "preset": self.preset,
                "encoder_config": keras.saving.serialize_keras_object(self.tower)}


@IMAGE_ENCODERS.register("clip")
@keras.saving.register_keras_serializable(package="vit_tf")
class CLIPImageEncoder(KerasHubVisionEncoder):
    """CLIP's vision tower (``keras_hub.models.CLIPVisionEncoder``), class token dropped."""

    family = "clip"
    backbone_class = keras_hub.models.CLIPBackbone
    encoder_class = keras_hub.models.CLIPVisionEncoder


@IMAGE_ENCODERS.register("siglip")
@keras.saving.register_keras_serializable(package="vit_tf")
class SigLIPImageEncoder(KerasHubVisionEncoder):
    """SigLIP's vision tower (``keras_hub.models.SigLIPVisionEncoder``) before its pooling head."""

    family = "siglip"
    backbone_class = keras_hub.models.SigLIPBackbone
    encoder_class = keras_hub.models.SigLIPVisionEncoder

    def _sequence(self, images, training):
        # The tower's own output is attention-pooled (its "head"); take the patch tokens
        # before it, after the final norm, as PaliGemma does.
        x = self.tower.embedding(images)  # (batch, patches, hidden)
        for block in self.tower.encoder_layers:
            x = block(x, training=training)
        return self.tower.post_layer_norm(x)
