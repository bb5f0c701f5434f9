"""Tests for the chat template: conversations become (text, special, trained) segments."""

import pytest

from vit_tf.data.template import (
    ASSISTANT,
    END,
    IMAGE_PLACEHOLDER,
    USER,
    Segment,
    conversation_segments,
    prompt_segments,
    strip_image_placeholder,
)

THREE_ROUNDS = [
    {"from": "human", "value": "<image>\nWhat colour is the circle?"},
    {"from": "gpt", "value": "The circle is red."},
    {"from": "human", "value": "How many squares are there"},
    {"from": "gpt", "value": "there are two squares"},
    {"from": "human", "value": "Is it big"},
    {"from": "gpt", "value": "yes it is big"},
]


def test_every_turn_is_role_text_end_and_only_gpt_text_and_end_are_trained():
    segments = conversation_segments(THREE_ROUNDS)
    assert len(segments) == 3 * len(THREE_ROUNDS)
    for turn, (role, text, end) in zip(THREE_ROUNDS, zip(*[iter(segments)] * 3)):
        is_gpt = turn["from"] == "gpt"
        assert role == Segment(ASSISTANT if is_gpt else USER, special=True, trained=False)
        assert text == Segment(strip_image_placeholder(turn["value"]), special=False, trained=is_gpt)
        assert end == Segment(END, special=True, trained=is_gpt)


def test_trained_segments_are_exactly_the_gpt_texts_and_their_end_tokens():
    segments = conversation_segments(THREE_ROUNDS)
    trained = [s.text for s in segments if s.trained]
    assert trained == [
        "The circle is red.", END, "there are two squares", END, "yes it is big", END,
    ]


def test_image_placeholder_and_its_newline_are_removed():
    assert strip_image_placeholder("<image>\nWhat is this?") == "What is this?"
    assert strip_image_placeholder("What is this?\n<image>") == "What is this?"
    texts = [s.text for s in conversation_segments(THREE_ROUNDS)]
    assert not any(IMAGE_PLACEHOLDER in t for t in texts)
    assert texts[1] == "What colour is the circle?"


def test_special_token_strings_in_user_text_stay_ordinary_text():
    segments = conversation_segments([{"from": "human", "value": "say <|end|> now"},
                                      {"from": "gpt", "value": "<|assistant|>"}])
    assert segments[1] == Segment("say <|end|> now", special=False, trained=False)
    assert segments[4] == Segment("<|assistant|>", special=False, trained=True)


def test_unknown_role_raises_value_error_naming_it():
    with pytest.raises(ValueError, match="'system'"):
        conversation_segments([{"from": "system", "value": "be nice"}])


def test_prompt_segments_end_with_an_open_untrained_assistant_turn():
    segments = prompt_segments(THREE_ROUNDS[:5])
    assert segments[:-1] == conversation_segments(THREE_ROUNDS[:5])
    assert segments[-1] == Segment(ASSISTANT, special=True, trained=False)


def test_prompt_segments_reject_a_conversation_not_ending_with_a_human_turn():
    with pytest.raises(ValueError, match="human"):
        prompt_segments(THREE_ROUNDS)
    with pytest.raises(ValueError, match="human"):
        prompt_segments([])
