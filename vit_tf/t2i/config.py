"""Typed configuration of a text-to-image run (``vit-tf t2i train --set key=value``).

The same machinery as ``vit_tf.config`` (dataclasses, type-checked overrides that reject
unknown keys, JSON round trip); the resolved config is written to ``RUN/t2i_config.json``.

Example::

    config = apply_overrides(T2IConfig(), ["generator=diffusion", "diffusion.widths=32,64"])
"""

from dataclasses import dataclass, field

from vit_tf.config import ConfigError, from_dict

GENERATORS = ("maskgit", "diffusion")
VQ_DECODERS = ("patch", "conv")        # the VQ-VAE's decoders (vit_tf.t2i.vqvae)
VQ_RESTARTS = ("random", "error")      # its dead-code restarts


@dataclass
class T2IDataConfig:
    image_size: int = 64
    max_text_length: int = 48          # caption tokens (padded width)
    vocabulary_size: int = 256         # upper bound of the WordPiece trained on the captions
    categories: str = "caption,description"   # records used as captions ("" = every record)
    hold_out: str = ""                 # colour:shape pairs never seen together in training,
                                       # e.g. "red:triangle,green:circle,blue:square"
    skip_invalid: bool = False


@dataclass
class VQConfig:
    patch_size: int = 8                # 64 px -> 8x8 codes
    width: int = 128
    code_dim: int = 16
    num_codes: int = 1024
    num_res_blocks: int = 2
    decoder: str = "patch"             # patch (per-code MLP) | conv (transposed convs)
    commitment: float = 0.25
    decay: float = 0.99
    dead_threshold: float = 0.01
    restart: str = "random"            # dead rows restart at: random | error (k-means++-like)
    batch_size: int = 64
    steps: int = 1200
    learning_rate: float = 2e-3
    max_seconds: float = 0.0           # stop early when training took this long (0: no limit)
    weights: str = ""                  # a trained tokenizer (.weights.h5 of this architecture)
                                       # to start from; with steps=0 it is used as it is


@dataclass
class MaskGITConfig:
    hidden_dim: int = 192
    num_layers: int = 4
    num_heads: int = 4
    intermediate_dim: int = 768
    dropout: float = 0.0
    group_size: int = 1                # g: a g x g block of codes per transformer position
    caption_dropout: float = 0.1
    batch_size: int = 64
    steps: int = 3000
    learning_rate: float = 1e-3
    warmup_steps: int = 100
    weight_decay: float = 0.01
    max_seconds: float = 0.0
    num_steps: int = 12                # decoding defaults of the preset
    guidance_scale: float = 3.0
    temperature: float = 1.0
    randomness: float = 4.5


@dataclass
class DiffusionConfig:
    patch_size: int = 2                # space-to-depth: the U-Net runs at 32 px on 2x2 patches
    widths: str = "32,64,96"
    block_depth: int = 1
    text_dim: int = 128
    text_layers: int = 2
    num_heads: int = 4
    attention_resolution: int = 16
    caption_dropout: float = 0.1
    batch_size: int = 32
    steps: int = 3000
    learning_rate: float = 1e-3
    warmup_steps: int = 100
    weight_decay: float = 1e-4
    max_seconds: float = 0.0
    num_steps: int = 20
    guidance_scale: float = 3.0


@dataclass
class T2IConfig:
    name: str = "t2i"
    generator: str = "maskgit"         # maskgit | diffusion
    seed: int = 0
    jit_compile: bool = True
    steps_per_execution: int = 10
    log_prompts: str = ("there is 1 object. a large red circle at the center.|"
                        "there are 2 objects. a small blue square at the top left. "
                        "a large yellow triangle at the bottom right.|"
                        "a large green square and a small purple circle.")
    log_every_steps: int = 500         # TensorBoard image grid of log_prompts (0: epoch ends)
    data: T2IDataConfig = field(default_factory=T2IDataConfig)
    vq: VQConfig = field(default_factory=VQConfig)
    maskgit: MaskGITConfig = field(default_factory=MaskGITConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)


def check(config):
    """Raise ``ConfigError`` for a value no run can use (the generator name, positive sizes)."""
    if config.generator not in GENERATORS:
        raise ConfigError(f"generator: {config.generator!r} is not one of {', '.join(GENERATORS)}")
    if config.vq.decoder not in VQ_DECODERS:
        raise ConfigError(f"vq.decoder: {config.vq.decoder!r} is not one of "
                          f"{', '.join(VQ_DECODERS)}")
    if config.vq.restart not in VQ_RESTARTS:
        raise ConfigError(f"vq.restart: {config.vq.restart!r} is not one of "
                          f"{', '.join(VQ_RESTARTS)}")
    for key, value in (("data.max_text_length", config.data.max_text_length),
                       ("vq.num_codes", config.vq.num_codes),
                       ("maskgit.batch_size", config.maskgit.batch_size),
                       ("maskgit.group_size", config.maskgit.group_size),
                       ("diffusion.batch_size", config.diffusion.batch_size)):
        if value < 1:
            raise ConfigError(f"{key} must be >= 1, got {value}")
    return config


def load_t2i_config(path):
    import json

    with open(path) as f:
        try:
            data = json.load(f)
        except json.JSONDecodeError as e:
            raise ConfigError(f"{path}: not valid JSON ({e})") from None
    return from_dict(T2IConfig, data)
