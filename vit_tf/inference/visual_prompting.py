"""Visual prompting (视觉提示): the zero-training baseline that puts the image into the prompt
as text. An ImageNet classifier (EfficientNet-Lite0) names the image's top-k classes, and the
pretrained LM (SmolLM2-135M-Instruct) answers the question with them written before it:

    <|im_start|>user
    An image classifier looked at the picture. Its top guesses: espresso (88%), cup (5%),
    coffee mug (2%).
    What is in the picture? Answer in a few words.<|im_end|>

``VisualPromptingTask`` has the two things ``vit_tf.eval.evaluate.evaluate`` reads of a task
(``preprocessor`` and ``generator()``), so the baseline is scored by the same pipeline and
written in the same ``metrics.json`` schema as the trained models.

Example:
    >>> vp = VisualPromptingTask.from_pretrained()
    >>> vp.generator().generate(["coffee.png"], [[{"from": "human", "value": "What is it?"}]])
"""

import numpy as np

from vit_tf.data.template import IMAGE_PLACEHOLDER

PROMPT = "An image classifier looked at the picture. Its top guesses: {guesses}."


def describe_guesses(top):
    """[(label, probability)] -> "espresso (88%), cup (5%)"."""
    return ", ".join(f"{label} ({100 * p:.0f}%)" for label, p in top)


class VisualPromptingGenerator:
    """``Generator``'s evaluation interface (``pixels``, ``generate``) for visual prompting."""

    use_cache = True

    def __init__(self, task, max_new_tokens, jit_compile=True):
        from vit_tf.models.text_lm import TextLM

        self.task = task
        self.lm = TextLM(task.backbone, task.preprocessor, max_new_tokens=max_new_tokens,
                         jit_compile=jit_compile)

    def pixels(self, images):
        pixels = np.asarray(self.task.preprocessor.convert_images(images))
        return pixels[None] if pixels.ndim == 3 else pixels

    def prompts(self, images, conversations):
        """Each conversation with the classifier's guesses written before its first question."""
        from vit_tf.models.encoders.efficientnet_lite import imagenet_top_k

        tops = imagenet_top_k(self.task.classifier, self.task.labels, self.pixels(images),
                              k=self.task.top_k)
        out = []
        for conversation, top in zip(conversations, tops):
            turns = [dict(t) for t in conversation]
            question = turns[0]["value"].replace(IMAGE_PLACEHOLDER, "").strip()
            turns[0]["value"] = PROMPT.format(guesses=describe_guesses(top)) + "\n" + question
            out.append(turns)
        return out

    def generate(self, images, conversations):
        return self.lm.answer(self.prompts(images, conversations))


class VisualPromptingTask:
    """ImageNet classifier + labels + a keras-hub LM backbone + the LM's preprocessor.

    Args:
        classifier: (b, S, S, 3) [0, 255] -> (b, 1000) logits.
        labels: the 1000 class names in logit order.
        backbone: the LM (e.g. SmolLM2's ``LlamaBackbone``).
        preprocessor: a ``VisionLanguagePreprocessor`` with the LM's tokenizer and chat format
            and the classifier's image size.
        top_k: how many guesses go into the prompt.
    """

    def __init__(self, classifier, labels, backbone, preprocessor, top_k=3):
        self.classifier, self.labels, self.backbone = classifier, labels, backbone
        self.preprocessor, self.top_k = preprocessor, top_k
        self._generators = {}

    @classmethod
    def from_pretrained(cls, encoder="pretrained:efficientnet_lite0",
                        lm="pretrained:smollm2_135m_instruct", image_size=224, top_k=3,
                        max_text_length=128):
        """EfficientNet-Lite0 and SmolLM2-135M-Instruct from the converted cache."""
        from vit_tf.config import ExperimentConfig
        from vit_tf.data.preset_tokenizer import preprocessor_for_config
        from vit_tf.models.decoders.hub_lm import load_lm_backbone
        from vit_tf.models.encoders.efficientnet_lite import (efficientnet_lite0_classifier,
                                                              imagenet_labels)

        config = ExperimentConfig()
        config.data.image_size, config.data.max_text_length = image_size, max_text_length
        config.model.decoder.name, config.model.decoder.preset = "llama", lm
        return cls(efficientnet_lite0_classifier(encoder, image_size), imagenet_labels(encoder),
                   load_lm_backbone("llama", lm), preprocessor_for_config(config), top_k)

    def generator(self, max_new_tokens=48, jit_compile=True, **_):
        key = (max_new_tokens, jit_compile)
        if key not in self._generators:
            self._generators[key] = VisualPromptingGenerator(self, max_new_tokens, jit_compile)
        return self._generators[key]
