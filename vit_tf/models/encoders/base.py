"""The contract of an image encoder: images -> a fixed number of image tokens.

Every encoder (``vit``, ``resnet50``/``vgg16``, ``clip``/``siglip``, ``saved_model``) takes
images (batch, image_size, image_size, 3) float32 in [0, 255] and returns tokens
(batch, num_tokens, hidden_dim); the VLM and generation read ``num_tokens`` (the length of the
image prefix) and ``patch_size`` (relevance maps) from it without probing.

Example:
    >>> encoder = IMAGE_ENCODERS.get("vit").from_section(EncoderConfig(), image_size=32)
    >>> encoder.num_tokens, encoder.compute_output_shape((2, 32, 32, 3))
    (16, (2, 16, 128))
"""

from keras import layers


class ImageEncoder(layers.Layer):
    """Base class of the image encoders.

    Attributes:
        image_size: the input side S.
        num_tokens: image tokens per image; subclasses set it in ``__init__``.
        hidden_dim: width of each token; subclasses set it in ``__init__``.
        patch_size: pixels per token side when tokens are square patches of the input (ViT),
            else None (CNN feature maps, towers that resize the input).
    """

    num_tokens = None
    hidden_dim = None
    patch_size = None

    def __init__(self, image_size, **kwargs):
        super().__init__(**kwargs)
        self.image_size = image_size

    @classmethod
    def from_section(cls, section, *, image_size, name="image_encoder"):
        """Subclasses implement: the encoder of ``config.model.encoder`` (``section``, an
        ``EncoderConfig``; each encoder reads the fields it uses by name) for images of side
        ``image_size``."""
        raise NotImplementedError(f"{cls.__name__} does not implement ImageEncoder.from_section")

    def call(self, images, training=None):
        """Subclasses implement: (batch, S, S, 3) in [0, 255] -> (batch, num_tokens, hidden_dim)."""
        raise NotImplementedError(f"{type(self).__name__} does not implement ImageEncoder.call")

    def compute_output_shape(self, input_shape):
        if self.num_tokens is None or self.hidden_dim is None:
            raise NotImplementedError(f"{type(self).__name__} must set num_tokens and hidden_dim "
                                      "(ImageEncoder)")
        return (input_shape[0], self.num_tokens, self.hidden_dim)
