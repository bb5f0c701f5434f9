"""Chat template: a conversation becomes a list of (text, is_response) segments.

Every segment is tokenized on its own, so the loss mask is exact by construction; nothing ever
searches the rendered string for role markers (the source of LLaVA's "tokenization mismatch").

Layout of one example (image tokens are prepended by the model, not written in the text):

    <|user|> {human turn} <|end|> <|assistant|> {gpt turn} <|end|> <|user|> ...
                                                 ^^^^^^^^^^^^^^^^^^^  trained

Example:
    >>> segments = conversation_segments([{"from": "human", "value": "<image>\\nHi"},
    ...                                   {"from": "gpt", "value": "hello"}])
    >>> [(s.text, s.special, s.trained) for s in segments]
    [('<|user|>', True, False), ('Hi', False, False), ('<|end|>', True, False),
     ('<|assistant|>', True, False), ('hello', False, True), ('<|end|>', True, True)]
"""

from dataclasses import dataclass

PAD = "[PAD]"
UNK = "[UNK]"
USER = "<|user|>"
ASSISTANT = "<|assistant|>"
END = "<|end|>"
IMAGE_PLACEHOLDER = "<image>"
SPECIAL_TOKENS = (PAD, UNK, USER, ASSISTANT, END)
ROLES = {"human": USER, "gpt": ASSISTANT}


@dataclass(frozen=True)
class Segment:
    text: str
    special: bool   # a special token, looked up by id (never split by the tokenizer)
    trained: bool   # its tokens are in the loss


def strip_image_placeholder(text):
    """Remove ``<image>`` (and the newline around it): image tokens are placed by the model."""
    return text.replace(IMAGE_PLACEHOLDER, "").strip()


def conversation_segments(conversations):
    """Segments for a whole conversation: the assistant's text and its end token are trained."""
    segments = []
    for turn in conversations:
        role = turn["from"]
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r} (expected 'human' or 'gpt')")
        trained = role == "gpt"
        segments.append(Segment(ROLES[role], True, False))
        segments.append(Segment(strip_image_placeholder(turn["value"]), False, trained))
        segments.append(Segment(END, True, trained))
    return segments


def prompt_segments(conversations):
    """Segments of a prompt ending in an open assistant turn, for generation.

    ``conversations`` ends with a human turn; earlier turns are the history.
    """
    if not conversations or conversations[-1]["from"] != "human":
        raise ValueError("a generation prompt must end with a human turn")
    return conversation_segments(conversations) + [Segment(ASSISTANT, True, False)]
