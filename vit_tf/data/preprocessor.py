"""``VisionLanguagePreprocessor``: raw images and conversations -> model inputs, in TF ops.

The one owner of the chat template, tokenization and image conversion (keras-hub's
``Preprocessor`` shape: a serializable Keras layer holding its tokenizer). The same object runs
inside ``tf.data`` (in memory and from TFRecord shards), in ``generate`` and inside the exported
SavedModel, so ids, masks and pixels are identical on every path.

A conversation becomes, per turn, ``role marker + text + end marker`` (``vit_tf.data.
chat_format``: one id per marker for our WordPiece, a sequence for a preset's chat format),
after the format's begin ids; the assistant's text and its end marker are trained. Each turn's
text is tokenized on its own, so the loss mask is exact by construction (nothing searches the
rendered string). ``<image>`` is removed from the text: the model places the image tokens.

Raw inputs (one example, or a batch with a leading axis):
    images     encoded bytes / file path (string), or a uint8 / float [0, 255] array
    roles      (T,) "human" / "gpt"      } a conversation (LLaVA's rules, as the validator:
    values     (T,) the turns' text      } alternating, ending with gpt, <image> once in turn 0)
    prompts, responses   one question and its answer (``<image>`` optional)
    id         optional record id, named in errors
Outputs of ``call`` (L = text length, S = image size):
    ({"images": (S, S, 3) float32, "token_ids": (L,) int32, "padding_mask": (L,) bool},
     labels (L,) int32 = token_ids shifted left by one, sample_weight (L,) float32 = 1 on
     trained labels); batched inputs give batched outputs, right-padded with id 0.

Example:
    >>> pre = VisionLanguagePreprocessor(tokenizer, "vit_tf", image_size=64, max_text_length=160)
    >>> ds = tf.data.Dataset.from_tensor_slices({"images": paths, "prompts": qs, "responses": answers})
    >>> ds = ds.map(pre)                       # (inputs, labels, sample_weight) per example
"""

import re

import keras
import numpy as np
import tensorflow as tf

from vit_tf.data.chat_format import CHAT_FORMATS, resolve_chat_format
from vit_tf.data.image_converter import convert_images
from vit_tf.data.preset_io import PreprocessorPresetMixin
from vit_tf.data.template import ASSISTANT, END, IMAGE_PLACEHOLDER, ROLES, USER

_SPACE_BEFORE_PUNCT = re.compile(r"\s+([.,!?;:])")


def conversation_tensors(conversations):
    """Python conversations (lists of {"from", "value"}) -> (roles, values) ragged (B, None),
    with a ``ValueError`` naming the turn for an unknown role."""
    roles, values, lengths = [], [], []
    for c, conversation in enumerate(conversations):
        for t, turn in enumerate(conversation):
            if turn.get("from") not in ROLES:
                raise ValueError(f"conversation {c} turn {t} field from: unknown role "
                                 f"{turn.get('from')!r} (expected 'human' or 'gpt')")
            roles.append(turn["from"])
            values.append(str(turn["value"]))
        lengths.append(len(conversation))
    lengths = tf.constant(lengths, tf.int64)
    return (tf.RaggedTensor.from_row_lengths(tf.constant(roles, tf.string), lengths),
            tf.RaggedTensor.from_row_lengths(tf.constant(values, tf.string), lengths))


def _constant_rows(rows):
    """list of id lists -> RaggedTensor (len(rows), None) int32."""
    return tf.ragged.constant(rows, dtype=tf.int32, ragged_rank=1)


@keras.saving.register_keras_serializable(package="vit_tf")
class VisionLanguagePreprocessor(PreprocessorPresetMixin, keras.layers.Layer):
    """Tokenizer + chat format + image converter, as one serializable layer.

    Args:
        tokenizer: a keras-hub tokenizer (our trained ``WordPieceTokenizer`` or a preset's
            SentencePiece / BPE tokenizer).
        chat_format: a key of ``vit_tf.data.chat_format.CHAT_FORMATS``.
        image_size: the model's square input size.
        max_text_length: text tokens a training example may have (the model's text context).
    """

    PRESET_WHAT = "vit_tf preset or run folder"

    def __init__(self, tokenizer, chat_format="vit_tf", image_size=64, max_text_length=160,
                 **kwargs):
        super().__init__(**kwargs)
        if chat_format not in CHAT_FORMATS:
            raise ValueError(f"unknown chat format {chat_format!r}; known: {', '.join(CHAT_FORMATS)}")
        # Raw strings and ragged tensors go through call unchanged (as keras-hub preprocessors).
        self._convert_input_args = False
        self._allow_non_tensor_positional_args = True
        self.tokenizer = tokenizer
        self.chat_format = chat_format
        self.image_size = int(image_size)
        self.max_text_length = int(max_text_length)
        self._chat = None
        self.built = True

    # ----- the chat format, resolved against the tokenizer's vocabulary -----

    @property
    def chat(self):
        """``ChatIds`` (resolved once the tokenizer has its vocabulary, e.g. after loading)."""
        if self._chat is None:
            with tf.init_scope():  # eagerly, even when first needed inside a traced function
                self._chat = resolve_chat_format(self.chat_format, self.tokenizer)
        return self._chat

    @property
    def vocabulary_size(self):
        return self.chat.vocabulary_size

    @property
    def stop_id(self):
        return self.chat.stop_id

    @property
    def pad_id(self):
        return self.chat.pad_id

    def special_ids(self):
        return self.chat.special_ids()

    # ----- text -----

    def tokenize_conversations(self, roles, values, add_generation_prompt=False):
        """Ragged (B, T) roles and values -> ragged (B, None) int32 ids and bool trained mask.

        Training (``add_generation_prompt=False``): every turn, then one ``[PAD]`` (id 0) so that
        labels are the ids shifted by one. Generation: the turns (ending with a human turn) and
        the open assistant marker, untrained.
        """
        chat = self.chat
        texts = tf.strings.strip(tf.strings.regex_replace(values.flat_values, IMAGE_PLACEHOLDER, ""))
        tokens = self._tokenize(texts)                                        # (N, None) ragged
        is_gpt = tf.equal(roles.flat_values, "gpt")                           # (N,)
        role_table = _constant_rows([chat.markers[USER], chat.markers[ASSISTANT]])
        role_ids = tf.gather(role_table, tf.cast(is_gpt, tf.int32))           # (N, None)
        end_ids = tf.gather(_constant_rows([chat.markers[END]]), tf.zeros_like(is_gpt, tf.int32))
        turns = tf.concat([role_ids, tokens, end_ids], axis=1)               # (N, None)
        masks = tf.concat([tf.zeros_like(role_ids, tf.bool),
                           tf.logical_and(tf.ones_like(tokens, tf.bool), is_gpt[:, None]),
                           tf.logical_and(tf.ones_like(end_ids, tf.bool), is_gpt[:, None])],
                          axis=1)
        lengths = roles.row_lengths()
        ids = tf.RaggedTensor.from_row_lengths(turns, lengths).merge_dims(1, 2)   # (B, None)
        trained = tf.RaggedTensor.from_row_lengths(masks, lengths).merge_dims(1, 2)
        batch = tf.shape(lengths, out_type=tf.int64)[0]
        parts_ids, parts_mask = [ids], [trained]
        if chat.begin:
            begin = tf.gather(_constant_rows([chat.begin]), tf.zeros([batch], tf.int32))
            parts_ids.insert(0, begin)
            parts_mask.insert(0, tf.zeros_like(begin, tf.bool))
        tail = ([chat.markers[ASSISTANT]] if add_generation_prompt else [[chat.pad_id]])
        tail = tf.gather(_constant_rows(tail), tf.zeros([batch], tf.int32))
        parts_ids.append(tail)
        parts_mask.append(tf.zeros_like(tail, tf.bool))
        return tf.concat(parts_ids, axis=1), tf.concat(parts_mask, axis=1)

    def _traced_tokenize(self, add_generation_prompt):
        """``tokenize_conversations`` as one traced function (eager ragged ops cost ~10x)."""
        cache = self.__dict__.setdefault("_traced", {})
        if add_generation_prompt not in cache:
            spec = tf.RaggedTensorSpec([None, None], tf.string, ragged_rank=1,
                                       row_splits_dtype=tf.int64)
            cache[add_generation_prompt] = tf.function(
                lambda roles, values: self.tokenize_conversations(roles, values,
                                                                  add_generation_prompt),
                input_signature=[spec, spec])
        return cache[add_generation_prompt]

    def _tokenize(self, texts):
        """(N,) strings -> ragged (N, None) int32. Eagerly keras-hub returns Python lists, so
        eager calls go through a traced function (the same ops as inside tf.data)."""
        if tf.executing_eagerly():
            if getattr(self, "_eager_tokenizer", None) is None:
                self._eager_tokenizer = tf.function(
                    self._tokenize_graph, input_signature=[tf.TensorSpec([None], tf.string)])
            return self._eager_tokenizer(texts)
        return self._tokenize_graph(texts)

    def _tokenize_graph(self, texts):
        tokens = self.tokenizer(texts)
        if isinstance(tokens, list):      # tf.config.run_functions_eagerly(True): Python lists
            tokens = tf.ragged.constant(tokens, dtype=tf.int32, ragged_rank=1)
        elif not isinstance(tokens, tf.RaggedTensor):
            tokens = tf.RaggedTensor.from_tensor(tokens)
        return tf.cast(tokens, tf.int32)

    def encode_conversations(self, conversations, add_generation_prompt=False, chunk=2048):
        """Python conversations -> list of (ids, trained) int32 / bool numpy arrays, eagerly and
        in bulk (with the training ``[PAD]``, or the generation prompt: see
        ``tokenize_conversations``). Results are kept per distinct conversation, so validating
        and then encoding the same records tokenizes them once."""
        cache = self.__dict__.setdefault("_encoded", {})
        if len(cache) > 500_000:
            cache.clear()
        keys = [(add_generation_prompt,
                 tuple((t.get("from"), str(t.get("value"))) for t in c)) for c in conversations]
        todo = list(dict.fromkeys(k for k in keys if k not in cache))
        traced = self._traced_tokenize(add_generation_prompt)
        for start in range(0, len(todo), chunk):
            batch = todo[start:start + chunk]
            roles, values = conversation_tensors(
                [[{"from": r, "value": v} for r, v in key[1]] for key in batch])
            ids, trained = traced(roles, values)
            lengths = ids.row_lengths().numpy()
            flat_ids, flat_mask = ids.flat_values.numpy(), trained.flat_values.numpy()
            offsets = np.concatenate([[0], np.cumsum(lengths)])
            for key, a, b in zip(batch, offsets[:-1], offsets[1:]):
                cache[key] = (flat_ids[a:b], flat_mask[a:b])
        return [cache[k] for k in keys]

    def text_length(self, conversation):
        """Text tokens of one conversation as trained (the validator's context check)."""
        return int(len(self.encode_conversations([conversation])[0][0]) - 1)

    def detokenize(self, ids):
        """One list of ids -> text (ids past the tokenizer's vocabulary, our added markers,
        are dropped; WordPiece text gets no space before . , ! ? ; :)."""
        ids = [int(i) for i in ids if int(i) < self.chat.base_vocabulary_size]
        if not ids:
            return ""
        text = self.tokenizer.detokenize(tf.constant([ids], tf.int32))[0]
        text = text.numpy().decode("utf-8") if hasattr(text, "numpy") else str(text)
        if self._is_wordpiece:
            text = _SPACE_BEFORE_PUNCT.sub(r"\1", text)
        return text.strip()

    def detokenize_graph(self, ids):
        """As ``detokenize`` in TF ops: ragged (B, None) ids -> (B,) strings."""
        ids = tf.ragged.boolean_mask(ids, ids < self.chat.base_vocabulary_size)
        text = self.tokenizer.detokenize(ids)
        if self._is_wordpiece:
            text = tf.strings.regex_replace(text, r"\s+([.,!?;:])", r"\1")
        return tf.strings.strip(text)

    def id_to_token(self, token_id):
        """The vocabulary entry of one id (our added markers included)."""
        token_id = int(token_id)
        if token_id >= self.chat.base_vocabulary_size:
            return {i: t for t, i in self.chat.added.items()}[token_id]
        return self.tokenizer.id_to_token(token_id)

    @property
    def _is_wordpiece(self):
        return type(self.tokenizer).__name__ == "WordPieceTokenizer"

    # ----- images -----

    def convert_images(self, images, kind="auto"):
        """Any accepted images -> (S, S, 3) / (batch, S, S, 3) float32 in [0, 255]
        (``vit_tf.data.image_converter``; ``kind`` says whether strings are bytes or paths)."""
        return convert_images(images, self.image_size, kind)

    # ----- the training call -----

    def _text_inputs(self, x):
        if "roles" in x:
            roles, values = x["roles"], x["values"]
        elif "prompts" in x:
            prompts, responses = tf.convert_to_tensor(x["prompts"]), tf.convert_to_tensor(x["responses"])
            roles = tf.stack([tf.fill(tf.shape(prompts), "human"), tf.fill(tf.shape(prompts), "gpt")], -1)
            values = tf.stack([prompts, responses], axis=-1)
        else:
            raise ValueError("raw examples need 'roles' and 'values' (a conversation) or 'prompts' "
                             f"and 'responses'; got keys {sorted(x)}")
        return roles, values

    def call(self, x, y=None, sample_weight=None):
        """Raw example(s) -> (inputs, labels, sample_weight); see the module docstring."""
        return self.preprocess(x)

    def preprocess(self, x, check_length=True):
        """``call``; ``check_length=False`` leaves too long conversations to the caller."""
        roles, values = self._text_inputs(x)
        roles = roles if isinstance(roles, tf.RaggedTensor) else tf.convert_to_tensor(roles)
        values = values if isinstance(values, tf.RaggedTensor) else tf.convert_to_tensor(values)
        batched = roles.shape.rank == 2
        if not batched:
            roles, values = (tf.RaggedTensor.from_tensor(t[None]) for t in (roles, values))
        elif not isinstance(roles, tf.RaggedTensor):
            roles, values = tf.RaggedTensor.from_tensor(roles), tf.RaggedTensor.from_tensor(values)
        ids, trained = self.tokenize_conversations(roles, values)             # (B, L + 1)
        longest = tf.reduce_max(ids.row_lengths()) - 1
        record = ["record", x["id"]] if "id" in x else []
        fits = longest <= self.max_text_length if check_length else tf.constant(True)
        checks = [tf.debugging.Assert(fits, [
            f"a conversation is longer than the text context (max_text_length="
            f"{self.max_text_length} tokens):", *record, "has", longest, "tokens"])]
        if "roles" in x:   # a conversation: the LLaVA rules the validator applies to files
            checks += _conversation_checks(roles, values, record)
        with tf.control_dependencies(checks):
            images = convert_images(x["images"], self.image_size)
        if not batched:
            ids, trained = ids[0], trained[0]                                   # (L + 1,)
            inputs = {"images": images, "token_ids": ids[:-1],
                      "padding_mask": tf.ones_like(ids[:-1], tf.bool)}
            return inputs, ids[1:], tf.cast(trained[1:], tf.float32)
        lengths = ids.row_lengths() - 1
        dense_ids = ids.to_tensor(self.pad_id)                                  # (B, L + 1)
        dense_trained = trained.to_tensor(False)
        width = tf.shape(dense_ids)[1] - 1
        inputs = {"images": images, "token_ids": dense_ids[:, :-1],
                  "padding_mask": tf.sequence_mask(lengths, width)}
        return inputs, dense_ids[:, 1:], tf.cast(dense_trained[:, 1:], tf.float32)

    # ----- generation -----

    def generate_preprocess(self, images, conversations):
        """Images + conversations ending with a human turn -> (pixels (B, S, S, 3), list of
        prompt id arrays). Raises ``ValueError`` naming a bad conversation."""
        for i, c in enumerate(conversations):
            if not c or c[-1].get("from") == "gpt":
                raise ValueError(f"conversation {i}: a generation prompt must end with a human turn")
        pixels = self.convert_images(images)
        prompts = [ids for ids, _ in self.encode_conversations(conversations,
                                                               add_generation_prompt=True)]
        return pixels, prompts

    # ----- serialization and presets -----

    def get_config(self):
        return {**super().get_config(), "tokenizer": keras.saving.serialize_keras_object(self.tokenizer),
                "chat_format": self.chat_format, "image_size": self.image_size,
                "max_text_length": self.max_text_length}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["tokenizer"] = keras.saving.deserialize_keras_object(config["tokenizer"])
        return cls(**config)

    def _check_loaded(self):
        self.chat  # resolve now: a vocabulary lacking the chat markers fails here


def _conversation_checks(roles, values, record):
    """Asserts of the validator's rules on ragged (B, T) conversations: turns alternate human,
    gpt, ... and end with gpt; ``<image>`` stands exactly once, in the first human turn."""
    turns = roles.row_lengths()                                               # (B,)
    position = tf.ragged.range(turns).flat_values                            # (N,) turn index
    expected = tf.where(position % 2 == 0, "human", "gpt")
    alternate = tf.reduce_all(tf.equal(roles.flat_values, expected))
    whole = tf.reduce_all((turns >= 2) & (turns % 2 == 0))
    text = values.flat_values
    count = (tf.strings.length(text) - tf.strings.length(
        tf.strings.regex_replace(text, IMAGE_PLACEHOLDER, ""))) // len(IMAGE_PLACEHOLDER)
    image_ok = tf.reduce_all(tf.equal(count, tf.cast(position == 0, count.dtype)))
    return [
        tf.debugging.Assert(alternate & whole, [
            "conversation field roles: turns must alternate human, gpt, ... and end with a gpt "
            "turn:", *record, roles.flat_values]),
        tf.debugging.Assert(image_ok, [
            "conversation field values: <image> must stand exactly once, in the first human "
            "turn:", *record]),
    ]

