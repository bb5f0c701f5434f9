"""Tiny text-to-image parts shared by the t2i tests (seconds to build, no training)."""

import keras

CAPTIONS = (
    "a large red circle.",
    "a small blue square and a large green triangle.",
    "there is 1 object. a large red circle at the top left.",
    "there are 2 objects. a small blue square on the left. a large yellow circle at the bottom.",
    "a small purple triangle, a large orange square and a small green circle.",
    "there are 3 objects. a large red circle at the top. a small cyan square on the right. "
    "a large blue triangle at the bottom right.",
)

_CACHE = {}


def preprocessor(image_size=16, max_text_length=40):
    from vit_tf.data.tokenizer import train_tokenizer
    from vit_tf.t2i.preprocessor import TextToImagePreprocessor

    key = ("pre", image_size, max_text_length)
    if key not in _CACHE:
        if "tokenizer" not in _CACHE:
            _CACHE["tokenizer"] = train_tokenizer(list(CAPTIONS) * 10, 128)
        _CACHE[key] = TextToImagePreprocessor(_CACHE["tokenizer"], image_size, max_text_length)
    return _CACHE[key]


def maskgit_task(seed=0, image_size=16, num_steps=3, patch_size=8, group_size=1):
    from vit_tf.t2i.generator import MaskGITTextToImage
    from vit_tf.t2i.maskgit import MaskGITBackbone
    from vit_tf.t2i.vqvae import VQVAE

    keras.utils.set_random_seed(seed)
    pre = preprocessor(image_size)
    vq = VQVAE(image_size, patch_size=patch_size, width=8, code_dim=4, num_codes=16,
               num_res_blocks=1, name="vq")
    backbone = MaskGITBackbone(pre.vocabulary_size, pre.max_text_length, 16, vq.num_tokens,
                               hidden_dim=16, num_layers=1, num_heads=2, intermediate_dim=32,
                               group_size=group_size, name="backbone")
    return MaskGITTextToImage(backbone, vq, pre, num_steps=num_steps, guidance_scale=2.0)


def diffusion_task(seed=0, image_size=16, num_steps=2):
    from vit_tf.t2i.diffusion import DiffusionTextToImage, DiffusionUNet

    keras.utils.set_random_seed(seed)
    pre = preprocessor(image_size)
    net = DiffusionUNet(image_size, pre.vocabulary_size, pre.max_text_length, widths="8,16",
                        block_depth=1, text_dim=16, text_layers=1, num_heads=2,
                        attention_resolution=8, embedding_dim=8, patch_size=2, name="network")
    return DiffusionTextToImage(net, pre, num_steps=num_steps, guidance_scale=2.0)
