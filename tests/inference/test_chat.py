"""Chat: answers as the generator does, drops old turns to fit the context and says so, commands."""

import numpy as np
import pytest

from tests.helpers import tiny_task, write_image
from vit_tf.data.image_converter import decode_image
from vit_tf.inference.chat import ChatSession, image_loader, run_chat


@pytest.fixture(scope="module")
def generator():
    task, _ = tiny_task(seed=2)
    return task.generator(max_new_tokens=4, jit_compile=False)


@pytest.fixture
def images(tmp_path):
    return [write_image(tmp_path / f"{i}.png", (16, 16), seed=i) for i in range(2)]


def _session(generator, image, out):
    return ChatSession(generator, image_loader(generator.preprocessor), image, write=out.append)


def test_chat_answer_equals_generate_on_the_same_conversation(generator, images):
    out = []
    session = _session(generator, images[0], out)
    run_chat(session, ["What colour is the circle?", "is it big"], write=out.append)
    first = [{"from": "human", "value": "What colour is the circle?"}]
    a1 = generator.generate(decode_image(images[0], 16).numpy()[None], [first])[0]
    second = first + [{"from": "gpt", "value": a1}, {"from": "human", "value": "is it big"}]
    a2 = generator.generate(decode_image(images[0], 16).numpy()[None], [second])[0]
    assert f"model: {a1}" in out and f"model: {a2}" in out
    assert session.history == second + [{"from": "gpt", "value": a2}]


def test_chat_drops_the_oldest_turns_to_fit_the_context_and_says_so(generator, images):
    out = []
    session = _session(generator, images[0], out)
    question = "how many squares are there on the left"
    for _ in range(4):
        session.handle(question)
    notices = [line for line in out if line.startswith("(dropped")]
    assert notices and f"{generator.max_text_length}-token context" in notices[0]
    seen = session.history[:-1]  # the turns the last answer was generated from
    assert session._length(seen) <= generator.max_text_length - generator.max_new_tokens
    assert seen[-1] == {"from": "human", "value": question} and len(seen) < 7


def test_image_command_switches_image_and_starts_a_new_conversation(generator, images):
    out = []
    session = _session(generator, images[0], out)
    session.handle("is it big")
    before = session.image.copy()
    assert session.handle(f"/image {images[1]}")
    assert session.history == [] and session.image_path == images[1]
    assert not np.array_equal(session.image, before)
    session.handle("/image /no/such/file.png")
    assert session.image_path == images[1] and out[-1].startswith("error:")


def test_reset_quit_and_unknown_commands(generator, images):
    out = []
    session = _session(generator, images[0], out)
    session.handle("is it big")
    assert session.handle("/reset") and session.history == []
    assert session.handle("/frobnicate") and "unknown command" in out[-1]
    run_chat(session, ["/quit", "is it big"], write=out.append)
    assert session.history == []  # nothing after /quit was answered


def test_streamed_chat_writes_the_same_answer(generator, images):
    pieces, out = [], []
    session = _session(generator, images[0], out)
    run_chat(session, ["What colour is the circle?"], write=out.append, stream_write=pieces.append)
    assert "".join(pieces) == f"model: {session.history[-1]['value']}\n"
