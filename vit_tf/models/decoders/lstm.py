"""LSTM language decoder with attention over image tokens (Show-Attend-Tell / Luong style)."""

import keras
import keras_hub
from keras import layers, ops

from vit_tf.models.decoders.base import LanguageDecoder, token_embedding_from_section
from vit_tf.registry import DECODERS


@DECODERS.register("lstm")
@keras.saving.register_keras_serializable(package="vit_tf")
class LSTMDecoderLM(LanguageDecoder):
    """Token embedding + pre-norm residual LSTM layers + tied output head, with a fusion.

    The image tokens reach the text through the ``fusion`` (``vit_tf.layers.fusion``):
    a prefix fusion (concat, resampler) runs its tokens through the LSTMs before the text; a
    read fusion updates the LSTM outputs after every layer (cross_attention) or after the last
    one (attention_pooling: the hidden state h_t queries the image tokens at every step and the
    pooled vector is combined with h_t before the output layer). ``fusion=None``: concat.

    Block i: ``x = x + LSTM_i(LN_i(x))``, then ``x = fusion.read(i, x, image_tokens)``.
    The generation cache is the LSTM state: (batch, num_layers, 2, hidden_dim) holding (h, c).

    Args: ``vocabulary_size``, ``hidden_dim``, ``num_layers``, ``max_sequence_length`` (prefix +
        text tokens it is used for; the LSTM has no position table), ``dropout``, ``fusion``,
        ``token_embedding`` (a reversible layer replacing the learned one, e.g. BERT's table).

    Call: ``token_ids`` (batch, text_len) int32, ``image_tokens`` (batch, N, hidden_dim)
        -> logits (batch, text_len, vocabulary_size) float32.

    Example:
        >>> decoder = LSTMDecoderLM(100, hidden_dim=16, num_layers=1, max_sequence_length=40)
        >>> decoder(ops.ones((2, 5), "int32"), image_tokens=ops.zeros((2, 4, 16))).shape
        (2, 5, 100)
    """

    def __init__(self, vocabulary_size, hidden_dim, num_layers, max_sequence_length, dropout=0.0,
                 fusion=None, token_embedding=None, **kwargs):
        super().__init__(vocabulary_size, hidden_dim, num_layers, max_sequence_length,
                         fusion=fusion, **kwargs)
        self.dropout = dropout
        # A pretrained table (vit_tf.layers.text_embedding) or our own, tied with the output head
        # (float32 logits under mixed precision).
        self.custom_embedding = token_embedding is not None
        self.token_embedding = token_embedding or keras_hub.layers.ReversibleEmbedding(
            vocabulary_size, hidden_dim, tie_weights=True, reverse_dtype="float32",
            name="token_embedding"
        )
        self.norms = [layers.LayerNormalization(epsilon=1e-6, name=f"norm_{i}")
                      for i in range(num_layers)]
        self.lstms = [
            layers.LSTM(hidden_dim, return_sequences=True, return_state=True, dropout=dropout,
                        name=f"lstm_{i}")
            for i in range(num_layers)
        ]
        self.final_norm = layers.LayerNormalization(epsilon=1e-6, name="final_norm")

    @classmethod
    def from_section(cls, section, *, vocabulary_size, max_sequence_length, make_fusion,
                     text_embedding=None, special_token_ids=None, name="decoder"):
        """``section`` fields: hidden_dim, num_layers, dropout (causal only: ``attention`` is
        checked by ``vit_tf.models.compat``); ``text_embedding`` as the Transformer's."""
        return cls(
            vocabulary_size, section.hidden_dim, section.num_layers, max_sequence_length,
            dropout=section.dropout, fusion=make_fusion(section.hidden_dim, section.num_layers),
            token_embedding=token_embedding_from_section(text_embedding, section.hidden_dim,
                                                         vocabulary_size),
            name=name,
        )

    def build(self, token_ids_shape, image_tokens_shape=None, padding_mask_shape=None):
        if not self.token_embedding.built:  # a pretrained table comes built
            self.token_embedding.build(token_ids_shape)
        shape = (None, None, self.hidden_dim)
        self.build_fusion()
        for norm, lstm in zip(self.norms, self.lstms):
            norm.build(shape)
            lstm.build(shape)
        self.final_norm.build(shape)
        self.built = True

    def _run(self, x, image_tokens, states=None, mask=None, training=None):
        """x (batch, len, hidden) through the blocks; returns (x, [(h, c)] per layer)."""
        new_states = []
        for i, (norm, lstm) in enumerate(zip(self.norms, self.lstms)):
            initial = None if states is None else list(states[i])
            y, h, c = lstm(norm(x), initial_state=initial, mask=mask, training=training)
            x = x + y  # (batch, len, hidden_dim)
            x = self.fused_read(i, x, image_tokens)
            new_states.append((h, c))
        return x, new_states

    def embed_tokens(self, token_ids):
        return self.token_embedding(token_ids)  # (batch, text_len, hidden_dim)

    def _logits(self, x, prefix_len):
        x = self.final_norm(x)[:, prefix_len:]  # (batch, text_len, hidden_dim)
        return ops.cast(self.token_embedding(x, reverse=True), "float32")

    def call(self, token_ids, image_tokens=None, padding_mask=None, training=None):
        # Right padding only: causal, so padded positions never affect the real ones.
        x, prefix_len = self.embed_with_prefix(token_ids, image_tokens)  # (batch, P + T, d)
        x, _ = self._run(x, image_tokens, training=training)
        return self._logits(x, prefix_len)

    def init_cache(self, batch_size, max_length=None):
        """Zero LSTM states (batch, num_layers, 2, hidden_dim); ``max_length`` is not needed."""
        return ops.zeros((batch_size, self.num_layers, 2, self.hidden_dim), self.compute_dtype)

    def call_with_cache(self, token_ids, cache, cache_update_index=None, image_tokens=None,
                        include_prefix=True, padding_mask=None, prefix_lengths=None):
        """Advance the LSTM state over (prefix +) ``token_ids``; returns ``(logits, cache)``.

        ``padding_mask`` (batch, text_len) marks the text tokens to consume: the state stops at
        the last marked one (a right-padded prompt buffer). ``cache_update_index`` is unused;
        ``prefix_lengths`` is not supported (causal only).
        """
        self._check_causal(prefix_lengths)
        x, prefix_len = self.embed_with_prefix(token_ids, image_tokens if include_prefix else None)
        mask = None
        if padding_mask is not None:
            mask = self.with_prefix_mask(padding_mask, prefix_len)  # (batch, prefix + text)
        states = [(cache[:, i, 0], cache[:, i, 1]) for i in range(self.num_layers)]
        x, states = self._run(x, image_tokens, states=states, mask=mask)
        cache = ops.stack([ops.stack(s, axis=1) for s in states], axis=1)  # (batch, layers, 2, d)
        return self._logits(x, prefix_len), cache

    def get_config(self):
        config = super().get_config()
        config.update(
            vocabulary_size=self.vocabulary_size,
            hidden_dim=self.hidden_dim,
            num_layers=self.num_layers,
            dropout=self.dropout,
            token_embedding=(keras.saving.serialize_keras_object(self.token_embedding)
                             if self.custom_embedding else None),
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if config.get("token_embedding") is not None:
            config["token_embedding"] = keras.saving.deserialize_keras_object(
                config["token_embedding"])
        return super().from_config(config)
