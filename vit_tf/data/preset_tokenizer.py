"""Which tokenizer and chat format a config needs: a keras-hub preset's, or our own WordPiece.

A keras-hub LM decoder brings its tokenizer and chat format (``model.decoder.preset``); a
pretrained text embedding brings BERT's (``model.text_embedding.preset``); otherwise vit_tf
trains a WordPiece vocabulary on the training texts (``vit_tf.data.tokenizer``). The formats
themselves are in ``vit_tf.data.chat_format``; the tokenizer, the format and the image size
together make the ``VisionLanguagePreprocessor``.

Example:
    >>> preprocessor = preprocessor_for_config(config, texts=conversation_texts(records))
"""

import keras_hub

from vit_tf.data.chat_format import preset_chat_format
from vit_tf.pretrained import resolve_preset

# keras-hub LM decoder name -> its default chat format (vit_tf.data.chat_format.CHAT_FORMATS);
# a preset's chat_format.json overrides it (SmolLM2, a Llama, writes ChatML).
HUB_LM_CHAT_FORMATS = {"gemma": "gemma", "llama": "llama3"}


def preset_tokenizer(config):
    """(keras-hub tokenizer, chat format) of the preset a config names, or None.
    ``model.decoder.preset=pretrained:NAME`` (and ``model.text_embedding.preset``) is
    converted once (``vit_tf.pretrained``)."""
    m = config.model
    if m.decoder.name in HUB_LM_CHAT_FORMATS:
        preset = resolve_preset(m.decoder.preset)
        return (keras_hub.tokenizers.Tokenizer.from_preset(preset),
                preset_chat_format(preset, HUB_LM_CHAT_FORMATS[m.decoder.name]))
    text = getattr(m, "text_embedding", None)
    if text is not None and text.name == "keras_hub":
        return keras_hub.tokenizers.Tokenizer.from_preset(resolve_preset(text.preset)), "bert"
    return None


def preprocessor_for_config(config, texts=None):
    """The ``VisionLanguagePreprocessor`` of ``config``; ``texts`` (an iterable of strings)
    train our WordPiece when the config names no preset tokenizer."""
    from vit_tf.data.preprocessor import VisionLanguagePreprocessor
    from vit_tf.data.tokenizer import train_tokenizer

    found = preset_tokenizer(config)
    if found is None:
        if texts is None:
            raise ValueError("vit_tf's WordPiece is trained on the training texts: pass texts")
        found = train_tokenizer(texts, config.data.vocabulary_size), "vit_tf"
    tokenizer, chat_format = found
    return VisionLanguagePreprocessor(tokenizer, chat_format, image_size=config.data.image_size,
                                      max_text_length=config.data.max_text_length)
