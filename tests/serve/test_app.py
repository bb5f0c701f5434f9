"""``vit-tf serve``: the browser chat, driven in a real headless Chromium.

One ``vit-tf serve`` process (a tiny preset saved here, on a free localhost port) and one
browser serve every browser test: upload an image, ask, read the streamed answer on the page
and compare it with ``task.generate``; ask a follow-up (the page keeps the conversation, as
``vit-tf chat``); upload a corrupt image and read the error. The browser is Debian's
``chromium`` with its ``chromedriver``, driven by selenium; without them the browser tests skip
(``apt-get install -y chromium chromium-driver``), except under ``CI=true``, where they fail.
The server logic (streaming, the context rule, errors) is also tested without a browser.
"""

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import pytest
from PIL import Image

from tests.helpers import tiny_task, write_image, write_tiny_run
from vit_tf.inference.chat import image_loader
from vit_tf.serve.app import ChatServer, check_upload

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync")
QUESTION, FOLLOW_UP = "What colour is the circle?", "is it big"
TIMEOUT = 90   # seconds to wait for the server to start / the page to answer


def _browser_or_skip():
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not os.path.exists(p)]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("selenium (pip install -r requirements.txt)")
    if missing:
        reason = (f"headless browser test needs {', '.join(missing)} "
                  "(apt-get install -y chromium chromium-driver)")
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _expected_answers(run, image):
    """``task.generate``'s answers to QUESTION, then to FOLLOW_UP after it (the preset's
    decoding settings). Run eagerly: the same kernels as the server's graphs without XLA, in
    3 s instead of the ~10 s that tracing the whole decoding loop takes here."""
    import tensorflow as tf

    from vit_tf.runs import generate_defaults, load_task

    task, g = load_task(run), generate_defaults(run)
    assert not g.jit_compile     # the preset the server loads decodes without XLA too
    settings = dict(max_new_tokens=g.max_new_tokens, jit_compile=False)
    tf.config.run_functions_eagerly(True)
    try:
        first = task.generate(image, QUESTION, **settings)
        history = [{"from": "human", "value": QUESTION}, {"from": "gpt", "value": first},
                   {"from": "human", "value": FOLLOW_UP}]
        return [first, task.generate({"images": [image], "conversations": [history]},
                                     **settings)[0]]
    finally:
        tf.config.run_functions_eagerly(False)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(url, image, corrupt image, task.generate's answers): ``vit-tf serve`` on a tiny saved
    preset; the expected answers are computed here while the server starts."""
    _browser_or_skip()
    folder = tmp_path_factory.mktemp("serve")
    run = str(folder / "run")
    write_tiny_run(run, seed=2, generate__jit_compile="false")
    image = write_image(folder / "circle.png", (16, 16), seed=1)
    corrupt = folder / "broken.png"
    corrupt.write_bytes(open(image, "rb").read()[:60])
    port = _free_port()
    log = open(folder / "serve.log", "w")
    env = dict(os.environ, GRADIO_TEMP_DIR=str(folder / "gradio"), TF_CPP_MIN_LOG_LEVEL="3")
    server = subprocess.Popen([sys.executable, "-m", "vit_tf.cli", "serve", "--model", run,
                               "--port", str(port)], stdout=log, stderr=subprocess.STDOUT,
                              env=env)
    url = f"http://127.0.0.1:{port}/"
    try:
        expected = _expected_answers(run, image)
        deadline = time.monotonic() + TIMEOUT
        while True:
            try:
                urllib.request.urlopen(url, timeout=2).read()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    log.flush()
                    pytest.fail(f"vit-tf serve did not start:\n{open(log.name).read()}")
                time.sleep(0.5)
        yield url, image, str(corrupt), expected
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


@pytest.fixture(scope="module")
def browser(served):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ.setdefault("SE_OFFLINE", "true")   # never let selenium fetch a driver
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(prefix="vit_tf_chromium_")
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def _wait(driver, condition, what):
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, TIMEOUT, poll_frequency=0.1).until(lambda d: condition(d))
    except Exception:
        pytest.fail(f"the page never showed {what}; status: {_status(driver)!r}")


def _status(driver):
    from selenium.webdriver.common.by import By

    return driver.find_element(By.ID, "status").text


def _open_and_upload(driver, url, path):
    from selenium.webdriver.common.by import By

    driver.get(url)
    upload = _wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#upload input[type=file]"),
                   "the upload field")
    upload[0].send_keys(path)


def _ask(driver, question, answered_before):
    """Type ``question``, send it with Enter, and return the page's answers once it is done."""
    from selenium.webdriver.common.by import By

    driver.find_element(By.CSS_SELECTOR, "#question textarea").send_keys(question + "\n")
    _wait(driver, lambda d: _status(d).startswith("Answered in") and len(
        d.find_elements(By.CSS_SELECTOR, '#chat [data-testid="bot"]')) > answered_before,
        f"an answer to {question!r}")
    return [e.text for e in driver.find_elements(By.CSS_SELECTOR, '#chat [data-testid="bot"]')]


def test_page_answers_as_task_generate_and_keeps_the_conversation(served, browser):
    from selenium.webdriver.common.by import By

    url, image, _, expected = served
    _open_and_upload(browser, url, image)
    _wait(browser, lambda d: _status(d).startswith("Image: circle.png"), "the upload")
    first = _ask(browser, QUESTION, 0)
    second = _ask(browser, FOLLOW_UP, 1)
    users = [e.text for e in browser.find_elements(By.CSS_SELECTOR, '#chat [data-testid="user"]')]
    assert users == [QUESTION, FOLLOW_UP]

    assert all(a.strip() for a in expected)
    assert first == expected[:1] and second == expected

    browser.find_element(By.ID, "clear").click()
    _wait(browser, lambda d: _status(d).startswith("Conversation cleared") and not
          d.find_elements(By.CSS_SELECTOR, '#chat [data-testid="bot"]'), "a cleared chat")


def test_page_names_a_corrupt_image_and_refuses_it(served, browser):
    url, _, corrupt, _ = served
    _open_and_upload(browser, url, corrupt)
    text = _wait(browser, lambda d: _status(d) if "Error" in _status(d) else None,
                 "an error for the corrupt image")
    assert text.startswith("Error: Cannot use broken.png: corrupt or truncated image"), text


# The server side, without a browser.

@pytest.fixture(scope="module")
def chat_server():
    """A ``ChatServer`` on a tiny task, decoding eagerly (the logic is under test, not the
    traced loop, which the browser tests run)."""
    import tensorflow as tf

    task, _ = tiny_task(seed=2)
    generator = task.generator(max_new_tokens=4, jit_compile=False)
    tf.config.run_functions_eagerly(True)
    try:
        yield ChatServer(generator, image_loader(task.preprocessor)), generator
    finally:
        tf.config.run_functions_eagerly(False)


def test_answers_stream_in_and_the_context_rule_is_chats(chat_server, tmp_path):
    server, generator = chat_server
    image = write_image(tmp_path / "a.png", (16, 16), seed=1)
    assert list(server.ask("tab", "hello", [])) == [([], "**Error:** upload an image first.")]
    assert server.set_image("tab", image) == ([], "Image: a.png. Ask a question about the image.")
    updates = list(server.ask("tab", QUESTION, []))
    answers = [messages[-1]["content"] for messages, _ in updates]
    assert len(updates) >= 3 and len(set(answers)) >= 3                  # token by token
    assert all(b.startswith(a) for a, b in zip(answers, answers[1:]))
    assert server.sessions["tab"].history[-1] == {"from": "gpt", "value": answers[-1]}
    assert updates[-1][1].startswith("Answered in")
    messages, question = updates[-1][0], "how many squares are there on the left"
    statuses = []
    for _ in range(4):
        *_, (messages, status) = server.ask("tab", question, messages)
        statuses.append(status)
    assert len(messages) == 10            # the page keeps every turn ...
    dropped = [s for s in statuses if s.startswith("(dropped the")]
    assert dropped and f"{generator.max_text_length}-token context" in dropped[0]   # ... the model
    long = " ".join(["circle"] * generator.max_text_length)
    *_, (after, status) = server.ask("tab", long, messages)
    assert after == messages and status.startswith("**Error:** this message is")
    assert server.clear("tab")[0] == [] and server.sessions["tab"].history == []


def test_uploads_other_than_png_or_jpeg_are_refused_by_name(chat_server, tmp_path):
    server, _ = chat_server
    gif = tmp_path / "anim.gif"
    Image.new("RGB", (8, 8)).save(gif, format="GIF")
    (tmp_path / "notes.png").write_text("not an image")
    assert "unsupported image format GIF" in check_upload(gif)
    assert check_upload(tmp_path / "notes.png").startswith("Cannot use notes.png: not an image")
    messages, status = server.set_image("other", str(tmp_path / "notes.png"))
    assert messages is None and status.startswith("**Error:** Cannot use notes.png")
    assert "other" not in server.sessions


def test_serve_refuses_a_missing_model_and_a_bad_port(tmp_path, capsys):
    from vit_tf.cli import main

    assert main(["serve", "--model", str(tmp_path / "nope"), "--port", "0"]) == 2
    assert "--port 0: expected 1..65535" in capsys.readouterr().err
    assert main(["serve", "--model", str(tmp_path / "nope")]) == 2
    assert "nope" in capsys.readouterr().err
