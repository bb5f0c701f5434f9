"""WordPiece tokenization and detokenization written with core TensorFlow ops only.

keras-hub's ``WordPieceTokenizer`` runs ``tensorflow_text`` ops (``regex_split``,
``normalize_utf8``, ``case_fold_utf8``, ``FastWordpieceTokenizer``); a SavedModel containing them
can only be served by a process that has imported ``tensorflow_text``. ``GraphWordPiece`` does
the same job with ops every TensorFlow build has (``tf.strings``, ``tf.lookup``, ragged
tensors), so an exported model needs TensorFlow and nothing else.

Same ids as vit_tf's keras-hub tokenizer (``lowercase=True``, ``strip_accents=False``; pinned by
tests/export/test_graph_tokenizer.py): split on whitespace and punctuation (punctuation and CJK
characters kept as words), lowercase, greedy longest-match-first word pieces with ``##``
suffixes; a word that cannot be fully covered (or is longer than 100 bytes) becomes ``[UNK]``.
One known difference: ``tf.strings.lower`` lowercases where keras-hub case-folds, which differs
for a few non-ASCII letters (e.g. "ß" is kept, case folding gives "ss").

Example:
    >>> wp = GraphWordPiece(tokenizer.get_vocabulary())
    >>> wp.tokenize(tf.constant(["What colour is it?"]))      # RaggedTensor (batch, None) int32
    >>> wp.detokenize(tf.ragged.constant([[7, 8]]))            # (batch,) string
"""

import tensorflow as tf

# The patterns of keras_hub/src/tokenizers/word_piece_tokenizer.py (RE2 syntax).
WHITESPACE = r"\s|\p{Cc}|\p{Cf}"
PUNCTUATION = r"[!-/]|[:-@]|[\[-`]|[{-~]|[\p{P}]"
CJK = (r"[\x{4E00}-\x{9FFF}]|[\x{3400}-\x{4DBF}]|[\x{20000}-\x{2A6DF}]|[\x{2A700}-\x{2B73F}]|"
       r"[\x{2B740}-\x{2B81F}]|[\x{2B820}-\x{2CEAF}]|[\x{F900}-\x{FAFF}]|[\x{2F800}-\x{2FA1F}]")
MAX_BYTES_PER_WORD = 100


def split_words(text):
    """(batch,) string -> RaggedTensor (batch, words) of lowercased words and punctuation."""
    text = tf.strings.regex_replace(text, CJK, r" \0 ")
    text = tf.strings.regex_replace(text, PUNCTUATION, r" \0 ")
    text = tf.strings.regex_replace(text, WHITESPACE, " ")
    return tf.strings.lower(tf.strings.split(text), encoding="utf-8")


class GraphWordPiece(tf.Module):
    """Core-TF WordPiece over a fixed vocabulary (a list of tokens, id = position)."""

    def __init__(self, vocabulary, oov_token="[UNK]", suffix_indicator="##", name=None):
        super().__init__(name=name)
        vocabulary = list(vocabulary)
        self.vocabulary = tf.constant(vocabulary)
        self.unk_id = vocabulary.index(oov_token)
        self.suffix_indicator = suffix_indicator
        self.table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                self.vocabulary, tf.range(len(vocabulary), dtype=tf.int32)), default_value=-1)

    def _word_pieces(self, words):
        """(N,) words -> (N, max_chars) piece ids, -1 padded; an uncoverable word -> [UNK]."""
        n_chars = tf.cast(tf.strings.length(words, unit="UTF8_CHAR"), tf.int32)   # (N,)
        width = tf.clip_by_value(tf.reduce_max(tf.concat([n_chars, [1]], 0)), 1, MAX_BYTES_PER_WORD)
        n = tf.shape(words)[0]
        grid = [n, width, width]                                                  # (word, start, length - 1)
        starts = tf.broadcast_to(tf.range(width)[None, :, None], grid)
        lengths = tf.broadcast_to(tf.range(1, width + 1)[None, None, :], grid)
        safe_starts = tf.minimum(starts, n_chars[:, None, None])                  # substr needs pos <= len
        pieces = tf.strings.substr(tf.broadcast_to(words[:, None, None], grid), safe_starts, lengths,
                                   unit="UTF8_CHAR")
        pieces = tf.where(starts > 0, self.suffix_indicator + pieces, pieces)
        valid = starts + lengths <= n_chars[:, None, None]
        ids = tf.where(valid, self.table.lookup(pieces), -1)                      # (N, W, W)

        def body(t, pos, failed, out):
            row = tf.gather(ids, tf.minimum(pos, width - 1), batch_dims=1)        # (N, W)
            best = tf.reduce_max(tf.where(row >= 0, tf.range(1, width + 1)[None, :], 0), axis=1)
            active = pos < n_chars
            failed = failed | (active & (best == 0))
            take = active & (best > 0)
            piece = tf.where(take, tf.gather(row, tf.maximum(best - 1, 0), batch_dims=1), -1)
            return t + 1, pos + tf.where(take, best, 0), failed, out.write(t, piece)

        init = (0, tf.zeros([n], tf.int32), tf.zeros([n], tf.bool),
                tf.TensorArray(tf.int32, size=width))
        _, _, failed, out = tf.while_loop(lambda t, *_: t < width, body, init)
        out = tf.transpose(out.stack())                                           # (N, W)
        failed = failed | (tf.strings.length(words) > MAX_BYTES_PER_WORD)
        unk = tf.concat([tf.fill([n, 1], self.unk_id), tf.fill([n, width - 1], -1)], axis=1)
        return tf.where(failed[:, None], unk, out)

    def tokenize(self, texts):
        """(batch,) string -> RaggedTensor (batch, None) int32 token ids."""
        words = split_words(texts)                                                # (batch, words)
        pieces = self._word_pieces(words.flat_values)                             # (N, W)
        per_word = tf.ragged.boolean_mask(pieces, pieces >= 0)                    # (N, pieces)
        return tf.RaggedTensor.from_row_lengths(per_word, words.row_lengths()).merge_dims(1, 2)

    def detokenize(self, ids):
        """RaggedTensor (batch, None) ids -> (batch,) string: pieces joined, ``##`` merged,
        no space before . , ! ? ; : (as ``Generator.detokenize``)."""
        tokens = tf.gather(self.vocabulary, ids)
        text = tf.strings.reduce_join(tokens, axis=1, separator=" ")
        text = tf.strings.regex_replace(text, " " + self.suffix_indicator + r"(\S)", r"\1")
        text = tf.strings.regex_replace(text, r"\s+([.,!?;:])", r"\1")
        return tf.strings.strip(text)
