"""Tiny random keras-hub presets written locally (``save_to_preset``), loaded as a user would.

Nothing is downloaded: the Gemma tokenizer is a SentencePiece model trained here on the tiny
texts, the Llama 3 tokenizer a byte-level BPE vocabulary (every byte + merges up to
the tiny texts' whole words), BERT's a
WordPiece vocabulary from the tiny texts.
"""

import io
import os

import keras
import keras_hub

from tests.helpers import TINY_TEXTS

WORDS = sorted({w.strip(".?").lower() for t in TINY_TEXTS for w in t.split()})


def _save(folder, backbone, tokenizer):
    """-> (folder, token embedding table of the saved backbone) to check the loaded weights."""
    os.makedirs(folder, exist_ok=True)
    backbone.save_to_preset(folder)
    tokenizer.save_to_preset(folder)
    return str(folder), keras.ops.convert_to_numpy(backbone.token_embedding.embeddings)


def gemma_preset(folder, seed=0):
    """A 1-layer Gemma (hidden 16) with a SentencePiece tokenizer holding Gemma's chat tokens."""
    import sentencepiece as spm

    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter([*TINY_TEXTS, "user", "model"] * 4), model_writer=model, vocab_size=120,
        model_type="bpe", pad_id=0, eos_id=1, bos_id=2, unk_id=3, pad_piece="<pad>",
        eos_piece="<eos>", bos_piece="<bos>", unk_piece="<unk>",
        user_defined_symbols=["<start_of_turn>", "<end_of_turn>", "\n"],
        normalization_rule_name="identity", add_dummy_prefix=False, hard_vocab_limit=False,
        minloglevel=2,
    )
    tokenizer = keras_hub.tokenizers.GemmaTokenizer(proto=model.getvalue())
    keras.utils.set_random_seed(seed)
    backbone = keras_hub.models.GemmaBackbone(
        vocabulary_size=tokenizer.vocabulary_size(), num_layers=1, num_query_heads=2,
        num_key_value_heads=1, hidden_dim=16, intermediate_dim=32, head_dim=8,
    )
    return _save(folder, backbone, tokenizer)


def llama3_preset(folder, seed=0):
    """A 1-layer Llama 3 (hidden 16, GQA) with a byte-level BPE tokenizer and its chat tokens."""
    from keras_hub.src.tokenizers.byte_pair_tokenizer import bytes_to_unicode

    _, chars = bytes_to_unicode()
    vocab = {c: i for i, c in enumerate(chars)}  # every byte: nothing is out of vocabulary
    merges = []  # whole words (with and without the leading space "Ġ"), one letter at a time
    for word in sorted({w for t in TINY_TEXTS for w in t.split()} | {"user", "assistant"}):
        for start, rest in (("Ġ", word), (word[0], word[1:])):
            for ch in rest:
                if start + ch not in vocab:
                    merges.append(f"{start} {ch}")
                    vocab[start + ch] = len(vocab)
                start += ch
    for special in ("<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>",
                    "<|end_header_id|>", "<|eot_id|>"):
        vocab[special] = len(vocab)
    tokenizer = keras_hub.tokenizers.Llama3Tokenizer(vocabulary=vocab, merges=merges)
    keras.utils.set_random_seed(seed)
    backbone = keras_hub.models.Llama3Backbone(
        vocabulary_size=len(vocab), num_layers=1, num_query_heads=2, num_key_value_heads=1,
        hidden_dim=16, intermediate_dim=32,
    )
    return _save(folder, backbone, tokenizer)


def bert_preset(folder, seed=0):
    """A 1-layer BERT (hidden 16) with a lowercase WordPiece vocabulary of the tiny words."""
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "?", ".", *WORDS]
    tokenizer = keras_hub.tokenizers.BertTokenizer(vocabulary=vocab, lowercase=True)
    keras.utils.set_random_seed(seed)
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=len(vocab), num_layers=1, num_heads=2, hidden_dim=16,
        intermediate_dim=32, max_sequence_length=64,
    )
    return _save(folder, backbone, tokenizer)
