"""Chat template markers: the roles of a conversation and the end of a turn.

Layout of one example (image tokens are prepended by the model, not written in the text):

    <|user|> {human turn} <|end|> <|assistant|> {gpt turn} <|end|> <|user|> ...
                                                 ^^^^^^^^^^^^^^^^^^^  trained

Each marker is written in a tokenizer's ids by a chat format (``vit_tf.data.chat_format``), and
the preprocessor (``vit_tf.data.preprocessor``) tokenizes every turn's text on its own, so the
loss mask is exact by construction; nothing ever searches the rendered string for role markers
(the source of LLaVA's "tokenization mismatch").
"""

PAD = "[PAD]"
UNK = "[UNK]"
USER = "<|user|>"
ASSISTANT = "<|assistant|>"
END = "<|end|>"
IMAGE_PLACEHOLDER = "<image>"
SPECIAL_TOKENS = (PAD, UNK, USER, ASSISTANT, END)
ROLES = {"human": USER, "gpt": ASSISTANT}


def strip_image_placeholder(text):
    """Remove ``<image>`` (and the newline around it): image tokens are placed by the model."""
    return text.replace(IMAGE_PLACEHOLDER, "").strip()
