"""Typed experiment configuration: dataclasses, type-checked ``--set`` overrides, JSON round trip.

Example:
    >>> cfg = ExperimentConfig()
    >>> cfg = apply_overrides(cfg, ["train.learning_rate=3e-4", "model.decoder.num_layers=4"])
    >>> cfg.train.learning_rate
    0.0003

Unknown keys and values of the wrong type raise ``ConfigError`` naming the key.
"""

import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field


class ConfigError(ValueError):
    """A bad configuration key or value."""


@dataclass
class DataConfig:
    image_size: int = 64              # images are resized to (image_size, image_size, 3)
    max_text_length: int = 160        # text tokens per example, chat template included
    vocabulary_size: int = 512        # upper bound for the trained WordPiece vocabulary
    batch_size: int = 32
    shuffle_buffer: int = 20000
    skip_invalid: bool = False        # train on the valid records and report the rest
    validation_fraction: float = 0.0  # held out from the training file for val_loss
    cache_images: bool = True         # decode each training image once into memory (uint8)
    cache_images_max_gb: float = 4.0  # above this, images are streamed from disk (and logged)
    pack_by_image: bool = False       # pack an image's examples into one row, each seeing only
                                      # the image and itself (vit_tf.data.packing; JSON sources)
    pack_length: int = 256            # tokens per packed row
    pad_widths: str = ""              # text widths batches are padded to, e.g. "96" (one XLA
                                      # shape); "" = 16, 24, 40, 64, 96, ... (bucket_widths)


@dataclass
class EncoderConfig:
    name: str = "vit"                 # key in vit_tf.registry.IMAGE_ENCODERS: vit, resnet50,
                                      # vgg16, efficientnet_lite0, clip, siglip, saved_model
    patch_size: int = 8
    hidden_dim: int = 128
    num_layers: int = 2
    num_heads: int = 4
    intermediate_dim: int = 256
    conv_stem: bool = True            # small conv stem before patchifying (faster to train)
    stem_layers: int = 0              # extra stride-1 3x3 convs in the stem
    sincos_positions: bool = False    # fixed 2D sin-cos patch positions instead of learned
    stem_norm: bool = False           # BatchNorm after each stem convolution
    dropout: float = 0.0
    # Pretrained / external encoders (resnet50, vgg16, efficientnet_lite0, clip, siglip,
    # saved_model):
    weights: str = ""                 # resnet50/vgg16: local weights file ("" = random init);
                                      # efficientnet_lite0: converted folder or
                                      # "pretrained:efficientnet_lite0"
    preset: str = ""                  # clip/siglip: keras-hub preset name or local folder
    handle: str = ""                  # saved_model: local SavedModel folder (TF-Hub download)
    endpoint: str = "serving_default" # saved_model: signature to call
    output_key: str = ""              # saved_model: output to use when the endpoint returns a dict
    trainable: bool = True            # False freezes a pretrained encoder
    pool_grid: int = 0                # efficientnet_lite0: average-pool the feature map to
                                      # pool_grid x pool_grid tokens (0 = every position)


@dataclass
class ProjectorConfig:
    name: str = "mlp"                 # "linear" or "mlp" (2 layers, GELU; LLaVA-1.5)


@dataclass
class FusionConfig:
    name: str = "concat"              # key in vit_tf.registry.FUSIONS: concat, cross_attention,
                                      # attention_pooling, resampler, relation_network
    num_heads: int = 4                # cross_attention and resampler attention heads
    gated: bool = True                # cross_attention: tanh gates initialised at 0 (Flamingo)
    num_queries: int = 8              # resampler: learned queries K (N image tokens -> K)
    resampler_layers: int = 1         # resampler: cross-attention layers over the image tokens
    relation_dim: int = 32            # relation_network: width of the pair MLP (N^2 pairs)
    relation_heads: int = 0           # relation_network: heads with which the question picks
                                      # each pair's two objects (0: it only shifts the units)


@dataclass
class DecoderConfig:
    name: str = "transformer"         # key in vit_tf.registry.DECODERS: transformer, lstm,
                                      # gemma, llama (lstm uses hidden_dim, num_layers, dropout
                                      # only; gemma/llama take every size from their preset)
    hidden_dim: int = 128
    num_layers: int = 2
    num_heads: int = 4
    intermediate_dim: int = 512
    dropout: float = 0.0
    attention: str = "causal"         # "causal" (LLaVA), "prefix" (PaliGemma's prefix-LM) or
                                      # "image" (image tokens bidirectional, text causal)
    preset: str = ""                  # gemma/llama: keras-hub preset name or local folder
    trainable: bool = True            # gemma/llama: False freezes the pretrained LM


@dataclass
class TextEmbeddingConfig:
    name: str = "learned"             # "learned" (the decoder's own table) or "keras_hub":
                                      # a pretrained BERT-family token embedding (preset)
    preset: str = ""                  # keras_hub: preset name or local folder (its tokenizer is used)
    trainable: bool = True            # keras_hub: False freezes the pretrained rows


@dataclass
class ModelConfig:
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    projector: ProjectorConfig = field(default_factory=ProjectorConfig)
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    fusion: FusionConfig = field(default_factory=FusionConfig)
    text_embedding: TextEmbeddingConfig = field(default_factory=TextEmbeddingConfig)


PART_MODES = ("frozen", "full", "lora")   # per-part training policy (vit_tf.training.policy)
LORA_TOKENS = ("all", "image", "with_image")  # where the decoder's LoRA applies (train.lora.tokens)
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")


@dataclass
class PolicyConfig:
    """How each part trains: frozen | full | lora, and its learning-rate multiplier."""
    image_encoder: str = "full"
    projector: str = "full"
    decoder: str = "full"
    fusion: str = "full"              # the decoder's fusion layer, when it has weights
    image_encoder_lr: float = 1.0     # multiplies the learning rate of the part's variables
    projector_lr: float = 1.0
    decoder_lr: float = 1.0
    fusion_lr: float = 1.0


@dataclass
class LoraConfig:
    rank: int = 8                     # low-rank update A (d_in, rank) @ B (rank, d_out)
    alpha: float = 16.0               # the update is scaled by alpha / rank
    tokens: str = "all"               # the decoder's LoRA at every position ("all"), or at the
                                      # image prefix's only ("image": text computes the original
                                      # LM; vit_tf.layers.image_lora, keras-hub LMs), or at every
                                      # position of a sequence with an image ("with_image": a
                                      # text-only sequence computes the original LM)


def _stage1_policy():
    # Alignment: only the connector (projector, and a fusion with weights) trains.
    return PolicyConfig(image_encoder="frozen", decoder="frozen")


@dataclass
class Stage1Config:
    """Stage 1 (alignment) before the main run; ``epochs=0`` skips it (single-stage training)."""
    epochs: int = 0
    steps_per_epoch: int = 0          # 0: one pass over the stage-1 records per epoch
    learning_rate: float = 1e-3
    warmup_steps: int = 20
    categories: str = "caption,description"   # records trained on; "" = all records
    policy: PolicyConfig = field(default_factory=_stage1_policy)


@dataclass
class TrainConfig:
    epochs: int = 10
    learning_rate: float = 1e-3       # peak, reached after warmup
    min_learning_rate: float = 1e-5   # end of the cosine decay
    warmup_steps: int = 100
    weight_decay: float = 0.01
    clipnorm: float = 1.0             # clip each variable's gradient to this L2 norm (0: off)
    global_clipnorm: float = 0.0      # or clip all gradients together to this global L2 norm
                                      # (0: off; set train.clipnorm=0 to use it)
    seed: int = 0
    jit_compile: bool = True          # XLA-compile the whole training step (on an idle
                                      # 2-core CPU ~1.35x faster than TensorFlow's oneDNN ops
                                      # at the issue-16 size, benchmarks/results.md)
    xla_update: bool = True           # jit_compile=false: XLA-compile the optimizer update
                                      # alone (vit_tf.training.compiled_update)
    steps_per_epoch: int = 0          # 0: one pass over the data per epoch (rounded down to
                                      # whole calls of steps_per_execution)
    steps_per_execution: int = 1      # training steps per compiled call (Keras compile); at
                                      # most this many, a divisor of the epoch's steps
                                      # (vit_tf.training.optim.steps_per_call)
    batch_slices: int = 0             # run each training batch as this many independent slices
                                      # in one step (same math; more parallel work for XLA on
                                      # CPU cores, VisionLanguageModel.call); 1 = whole, 0 =
                                      # auto: 2 on CPU, 1 with a GPU or TPU
    num_samples_to_log: int = 3       # generated answers written to TensorBoard each epoch
    relevance_maps: int = 1           # of those, explained as image relevance maps each epoch
    profile_steps: str = ""           # TensorBoard profiler: "10,20" traces steps 10-20, "" off
    precision: str = "float32"        # float32 | mixed_bfloat16 | mixed_float16 (loss scaling)
    policy: PolicyConfig = field(default_factory=PolicyConfig)   # the main (stage 2) run
    lora: LoraConfig = field(default_factory=LoraConfig)         # parts whose policy is "lora"
    stage1: Stage1Config = field(default_factory=Stage1Config)
    checkpoint_every_steps: int = 0   # also checkpoint the training state every N steps (0: at
                                      # epoch ends only); --resume continues from the newest
    strategy: str = "default"         # default | mirrored | multi_worker | tpu
                                      # (vit_tf.training.distribute); data.batch_size is global
    devices: str = ""                 # mirrored: e.g. "/gpu:0,/gpu:1" ("" = all GPUs, else CPU)
    tpu: str = ""                     # tpu: TPUClusterResolver name/address ("" = local TPU)


@dataclass
class GenerateConfig:
    max_new_tokens: int = 48
    batch_size: int = 64
    strategy: str = "greedy"          # greedy | beam | top_k | top_p (vit_tf.models.samplers)
    num_beams: int = 4                # beam search width
    top_k: int = 10                   # top_k: sample among the k most likely tokens
    top_p: float = 0.9                # top_p: smallest set of tokens with this much probability
    temperature: float = 1.0          # logits are divided by it before the softmax
    seed: int = 0                     # sampling seed; each generate call restarts from it
    stop_tokens: str = ""             # extra comma-separated stop tokens (<|end|> always stops)
    use_cache: bool = True            # KV-cached decoding
    jit_compile: bool = True          # XLA-compile the decoding loop


@dataclass
class PretrainConfig:
    """The contrastive stage (``vit-tf pretrain``, ``vit_tf.training.pretrain``): the image
    encoder of ``model.encoder`` and a small text Transformer trained on image-text pairs."""
    loss: str = "siglip"              # siglip (sigmoid, learnable bias) | clip (softmax)
    embed_dim: int = 64               # the shared embedding space
    pooling: str = "mean"             # image tokens -> one vector: mean | attention
    text_hidden_dim: int = 64
    text_num_layers: int = 2
    text_num_heads: int = 4
    text_intermediate_dim: int = 128
    text_max_length: int = 48         # tokens per text (longer texts are cut)
    text_vocabulary_size: int = 512
    texts: str = "caption,description,questions"   # which records become pairs: categories,
                                      # and "questions" = every other record's Q+A text
    batch_size: int = 256             # global batch: in-batch negatives (gathered over replicas)
    epochs: int = 10
    steps_per_epoch: int = 0          # 0: one pass over the pairs
    max_seconds: float = 0.0          # stop at the first epoch end past this (0: no limit)
    learning_rate: float = 2e-3
    warmup_steps: int = 100
    weight_decay: float = 0.1
    scale_init: float = 10.0          # initial logit scale exp(t) (CLIP: 1/0.07; SigLIP: 10)
    bias_init: float = -10.0          # initial logit bias b (siglip only; SigLIP: -10)
    learn_scale: bool = True          # train t (and b)
    eval_pairs: int = 512             # held-out pairs for the per-epoch retrieval metrics


@dataclass
class ExperimentConfig:
    name: str = "default"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    generate: GenerateConfig = field(default_factory=GenerateConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)


def _field_types(cls):
    return typing.get_type_hints(cls)


def _coerce(text, tp, key):
    """Parse ``text`` (a command-line string) as type ``tp``."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if text.lower() in ("none", "null"):
            return None
        return _coerce(text, args[0], key)
    if tp is bool:
        low = text.lower()
        if low in ("true", "1", "yes"):
            return True
        if low in ("false", "0", "no"):
            return False
        raise ConfigError(f"{key}: expected a bool (true/false), got {text!r}")
    if tp is int:
        try:
            return int(text)
        except ValueError:
            raise ConfigError(f"{key}: expected an int, got {text!r}") from None
    if tp is float:
        try:
            return float(text)
        except ValueError:
            raise ConfigError(f"{key}: expected a float, got {text!r}") from None
    if tp is str:
        return text
    raise ConfigError(f"{key}: cannot set a value of type {tp} from the command line")


def _check_value(value, tp, key):
    """Type-check a value coming from JSON or Python (ints are accepted for floats)."""
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp in (int, str, bool, float) and not (
        isinstance(value, tp) and not (tp is int and isinstance(value, bool))
    ):
        raise ConfigError(f"{key}: expected {tp.__name__}, got {value!r}")
    return value


def apply_overrides(config, overrides):
    """Return a copy of ``config`` with ``["a.b=value", ...]`` applied, type-checked."""
    config = from_dict(type(config), to_dict(config))
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like key=value, e.g. train.epochs=3")
        key, text = item.split("=", 1)
        parts = key.strip().split(".")
        target = config
        for i, part in enumerate(parts):
            if not dataclasses.is_dataclass(target):
                raise ConfigError(f"unknown config key {key!r}: {'.'.join(parts[:i])} is not a section")
            types_ = _field_types(type(target))
            if part not in types_:
                known = ", ".join(types_)
                where = ".".join(parts[:i]) or "the top level"
                raise ConfigError(f"unknown config key {key!r}: no {part!r} in {where} (known: {known})")
            if i == len(parts) - 1:
                if dataclasses.is_dataclass(types_[part]):
                    raise ConfigError(f"{key!r} is a section; set one of its fields instead")
                setattr(target, part, _coerce(text.strip(), types_[part], key))
            else:
                target = getattr(target, part)
    return config


def to_dict(config):
    return dataclasses.asdict(config)


def from_dict(cls, data, prefix=""):
    """Build dataclass ``cls`` from a dict, rejecting unknown keys and wrong types."""
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix or 'config'}: expected an object, got {data!r}")
    types_ = _field_types(cls)
    unknown = set(data) - set(types_)
    if unknown:
        raise ConfigError(f"unknown config key(s) {sorted(unknown)} in {prefix or 'config'}")
    kwargs = {}
    for name, value in data.items():
        key = f"{prefix}.{name}" if prefix else name
        tp = types_[name]
        if dataclasses.is_dataclass(tp):
            kwargs[name] = from_dict(tp, value, key)
        else:
            kwargs[name] = _check_value(value, tp, key)
    return cls(**kwargs)


def save_config(config, path):
    with open(path, "w") as f:
        json.dump(to_dict(config), f, indent=2)


def load_config(path):
    with open(path) as f:
        try:
            data = json.load(f)
        except json.JSONDecodeError as e:
            raise ConfigError(f"{path}: not valid JSON ({e})") from None
    return from_dict(ExperimentConfig, data, prefix="")

