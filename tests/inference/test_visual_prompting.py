"""vit_tf.inference.visual_prompting: the classifier's top labels go into the LM's prompt, and
the baseline is scored by the one evaluation pipeline (same metrics.json schema)."""

import json

import keras
import numpy as np
import pytest

from tests.smollm2_tiny import tiny_llama_preset, tiny_preprocessor, tiny_records
from vit_tf.inference.visual_prompting import VisualPromptingTask

LABELS = ["hello", "user", "world", "horse", "sea"]


@pytest.fixture(scope="module")
def vp(tmp_path_factory):
    from vit_tf.models.decoders.hub_lm import load_lm_backbone

    root = tmp_path_factory.mktemp("vp")
    preset = tiny_llama_preset(root)
    pre = tiny_preprocessor(preset)                      # 16 px images
    keras.utils.set_random_seed(0)
    classifier = keras.Sequential([keras.Input((16, 16, 3)), keras.layers.Rescaling(1 / 2550),
                                   keras.layers.Flatten(),
                                   keras.layers.Dense(len(LABELS))])
    task = VisualPromptingTask(classifier, LABELS, load_lm_backbone("llama", preset),
                               pre, top_k=2)
    return task, tiny_records(root, 3), root


def test_prompt_carries_the_classifiers_top_labels(vp):
    task, records, _ = vp
    generator = task.generator(max_new_tokens=4, jit_compile=False)
    pixels = generator.pixels([records[0]["image_path"]])
    logits = np.asarray(task.classifier(pixels))[0]
    top = [LABELS[i] for i in np.argsort(-logits)[:2]]
    prompt = generator.prompts(pixels, [records[0]["conversations"][:1]])[0][0]["value"]
    assert prompt.startswith("An image classifier looked at the picture. Its top guesses: "
                             f"{top[0]} (")
    assert f"), {top[1]} (" in prompt and prompt.endswith("\nwhat is here?")
    assert "<image>" not in prompt


def test_evaluated_by_the_one_pipeline(vp, tmp_path):
    from vit_tf.eval.evaluate import evaluate
    from vit_tf.eval.items import eval_set

    task, records, root = vp
    data = [{k: v for k, v in r.items() if k != "image_path"} | {"image": f"img{i}.png"}
            for i, r in enumerate(records)]
    (root / "data.json").write_text(json.dumps(data))
    evalset = eval_set(image_root=str(root), preprocessor=task.preprocessor, max_text_length=40,
                       data=str(root / "data.json"), log=lambda m: None)
    report, items = evaluate(task, evalset, str(tmp_path), batch_size=4, max_new_tokens=4,
                             jit_compile=False, log=lambda m: None)
    assert report["schema_version"] == 1 and report["prompt"]["chat_format"] == "chatml"
    assert report["categories"]["caption"]["n"] == 3
    assert all(isinstance(it["prediction"], str) for it in items)
