"""Language decoders: token ids (+ image tokens through a fusion) -> next-token logits.

Every decoder is a ``LanguageDecoder`` (``base``); importing this package registers them in
``vit_tf.registry.DECODERS``: ``transformer``, ``lstm``, ``gemma``, ``llama``.
"""

from vit_tf.models.decoders.base import ATTENTION_MODES, LanguageDecoder
from vit_tf.models.decoders.hub_lm import (GemmaDecoderLM, HubCausalLMDecoder, LlamaDecoderLM,
                                           load_lm_backbone)
from vit_tf.models.decoders.lstm import LSTMDecoderLM
from vit_tf.models.decoders.transformer import TransformerDecoderLM

__all__ = ["ATTENTION_MODES", "GemmaDecoderLM", "HubCausalLMDecoder", "LSTMDecoderLM",
           "LanguageDecoder", "LlamaDecoderLM", "TransformerDecoderLM", "load_lm_backbone"]
