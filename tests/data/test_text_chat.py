"""vit_tf.data.text_chat: varied text-only prompts that never ask a retention prompt again, the
LLaVA-shaped file without images (validated, errors naming file / record / field), and the
end marker of an answer cut at the token limit left out of the loss."""

import json
import re

import numpy as np
import pytest

from vit_tf.data.pipeline import EncodedExamples
from vit_tf.data.sources.validation import DataValidationError
from vit_tf.data.text_chat import (_TEMPLATES, chat_prompts, chat_records, overlapping,
                                   read_text_chat, untrain_unfinished_ends)
from vit_tf.eval.lm_retention import PROMPTS


def test_prompts_are_varied_distinct_and_never_a_retention_prompt():
    prompts = chat_prompts(400, seed=0)                 # the command's default count
    assert len(set(prompts)) == 400 and chat_prompts(400, seed=0) == prompts
    assert not {p: overlapping(p, PROMPTS) for p in prompts if overlapping(p, PROMPTS)}
    assert not set(prompts) & set(PROMPTS)
    patterns = [(k, re.compile(re.escape(t).replace(r"\{\}", ".+"))) for k, t, _ in _TEMPLATES]
    kinds = {next(k for k, pattern in patterns if pattern.fullmatch(p)) for p in prompts}
    assert len(kinds) >= 20                           # facts, arithmetic, writing, advice, ...
    assert chat_prompts(50, seed=1) != chat_prompts(50, seed=0)


def test_overlap_catches_restatements_and_exclude_applies_it():
    assert overlapping("what's the capital of France", PROMPTS) == [PROMPTS[0]]
    assert overlapping("How many legs does a spider have? Answer briefly.", PROMPTS)
    assert overlapping("Which city is the capital of Japan?", PROMPTS) == []
    kept = chat_prompts(30, exclude=["Which city is the capital of Japan?"])
    assert "Which city is the capital of Japan?" not in kept


def test_file_round_trip_and_every_problem_named(tmp_path):
    path = tmp_path / "chat.json"
    records = chat_records(["Name four birds.", "Add 21 and 13."], ["Robin, owl, ...", "34."],
                           [False, True], {"lm": "x"})
    path.write_text(json.dumps(records))
    back = read_text_chat(str(path))
    assert [r["image_path"] for r in back] == ["", ""]
    assert [r["finished"] for r in back] == [False, True] and back[0]["category"] == "text_chat"
    bad = [dict(records[0], image="a.png"),
           dict(records[1], conversations=[{"from": "human", "value": "<image>\nhi"},
                                           {"from": "gpt", "value": "yo"}]),
           {"id": "c", "finished": "no", "conversations": records[0]["conversations"]},
           {"id": "c", "conversations": records[0]["conversations"][:1]}]
    path.write_text(json.dumps(bad))
    with pytest.raises(DataValidationError) as error:
        read_text_chat(str(path))
    text = str(error.value)
    for where in ("record 'chat-0000'", "image", "record 'chat-0001'", "conversations[0].value",
                  "finished", "duplicate id", "conversations[0].from"):
        assert where in text
    path.write_text("{")
    with pytest.raises(DataValidationError, match="chat.json"):
        read_text_chat(str(path))


def test_unfinished_answers_do_not_train_their_end_marker():
    trained = np.array([[0, 0, 1, 1, 1, 1, 0], [0, 0, 1, 1, 1, 1, 0]], bool)
    examples = EncodedExamples(np.array(["", ""]), np.zeros((2, 7), np.int32), trained.copy(),
                               np.array([6, 6], np.int32), ["a", "b"])
    touched = untrain_unfinished_ends(examples, [{"finished": False}, {"finished": True}], 2)
    assert touched == 1
    assert examples.trained[0].tolist() == [0, 0, 1, 1, 0, 0, 0]
    assert examples.trained[1].tolist() == trained[1].tolist()
