"""A tiny SmolLM2 stand-in for the recipe's tests: the GGUF converter's tiny Llama (2 layers,
width 16, ChatML control tokens, a lowercase byte-level BPE vocabulary) as a preset folder, and
a tiny VLM on it (our small ViT encoder -> MLP projector -> that Llama)."""

import keras

from tests.helpers import tiny_config, write_image
from tests.models.pretrained.test_gguf_llama import write_tiny_gguf
from vit_tf.models.pretrained.gguf_llama import convert

_PRESETS = {}


def tiny_llama_preset(root):
    """Convert the tiny GGUF once per process into ``root``; returns the preset folder."""
    if "preset" not in _PRESETS:
        src = write_tiny_gguf(root / "tiny.gguf")
        _PRESETS["preset"] = convert(src, str(root / "preset"), chat_format="chatml")
    return _PRESETS["preset"]


def tiny_llama_config(preset):
    return tiny_config(model__decoder__name="llama", model__decoder__preset=preset,
                       data__max_text_length=40)


def tiny_preprocessor(preset):
    """The tiny Llama's ChatML preprocessor (16 px images), one per process: tracing its
    conversation tokenizer costs seconds, once per preprocessor and mode."""
    if "preprocessor" not in _PRESETS:
        from vit_tf.data.preset_tokenizer import preprocessor_for_config

        _PRESETS["preprocessor"] = preprocessor_for_config(tiny_llama_config(preset))
    return _PRESETS["preprocessor"]


def tiny_llama_task(preset, seed=0):
    """(task, config): tiny ViT -> MLP -> the tiny Llama with ``tiny_preprocessor``, built once
    per process and shared by the test modules (they may train it: what they assert holds for
    any weights)."""
    from vit_tf.models.factory import build_task

    if "task" not in _PRESETS:
        config = tiny_llama_config(preset)
        keras.utils.set_random_seed(seed)
        _PRESETS["task"] = build_task(config, tiny_preprocessor(preset)), config
    return _PRESETS["task"]


def tiny_records(folder, n=6):
    """Caption records in lowercase (the tiny vocabulary), each with its own image."""
    records = []
    for i in range(n):
        path = str(folder / f"img{i}.png")
        write_image(path, seed=i)
        records.append({"id": f"r{i}", "image_path": path, "category": "caption",
                        "conversations": [{"from": "human", "value": "<image>\nwhat is here?"},
                                          {"from": "gpt", "value": "a user" if i % 2 else "hello"}]})
    return records
