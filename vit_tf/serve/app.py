"""``vit-tf serve``: a browser chat about an image, built with Gradio (as LLaVA's own demo).

Upload an image, ask, and the answer streams in token by token (``Generator.stream_text``);
follow-up questions see the conversation so far. Each browser tab has its own
:class:`~vit_tf.inference.chat.ChatSession`, the one ``vit-tf chat`` uses, so the context rule
is the same: before each answer the oldest exchanges are dropped until the prompt leaves room for
``max_new_tokens``, and the page says how many were dropped. A new image starts a new
conversation; "Clear" forgets the conversation and keeps the image.

A file that is not a readable PNG or JPEG (the formats the data readers accept) is refused on
the page with its name and the reason, and the conversation is left as it was.

Nothing is fetched from the network: Gradio's analytics are off, the page uses the system's
fonts, and the server listens on ``--host`` (default 127.0.0.1, this machine only).

Example:
    $ vit-tf serve --model runs/default --port 7860     # then open http://127.0.0.1:7860
    >>> demo = build_app(load_task("runs/default"), GenerateConfig())   # a gradio.Blocks
"""

import os
import time

from vit_tf.data.sources.validation import check_image_file
from vit_tf.inference.chat import ChatSession, image_loader

TITLE = "vit_tf chat"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860
READY = "Ask a question about the image."


def _shown_name(path):
    """An upload's own file name: Gradio keeps it as the last part of its temporary path."""
    return os.path.basename(str(path))


def check_upload(path):
    """None when ``path`` is a readable PNG or JPEG, else the message the page shows."""
    problems = check_image_file(path, "upload")
    if problems:
        return f"Cannot use {_shown_name(path)}: {problems[0].message}."
    return None


class ChatServer:
    """The server side of the page: one ``ChatSession`` per browser tab (its session hash).

    ``generator`` (a ``Generator``) and ``load_image`` are shared by every tab; the model
    answers one question at a time (Gradio queues each event with concurrency 1).
    """

    def __init__(self, generator, load_image):
        self.generator = generator
        self.load_image = load_image
        self.sessions = {}
        self.notices = {}

    def _session(self, key):
        return self.sessions.get(key)

    def set_image(self, key, path):
        """(chat history, status) after an upload: a new conversation, or the reason it was
        refused (the previous image and conversation are kept)."""
        if path is None:
            self.sessions.pop(key, None)
            return [], "Upload an image to start."
        problem = check_upload(path)
        if problem is None:
            notices = self.notices.setdefault(key, [])
            try:
                self.sessions[key] = ChatSession(self.generator, self.load_image, path,
                                                 write=notices.append)
            except (OSError, ValueError) as e:
                problem = f"Cannot use {_shown_name(path)}: {e}"
        if problem is not None:
            return None, f"**Error:** {problem}"
        return [], f"Image: {_shown_name(path)}. {READY}"

    def ask(self, key, question, messages):
        """Yield (chat history, status) while the answer streams in."""
        session = self._session(key)
        messages = list(messages or [])
        question = (question or "").strip()
        if session is None:
            yield messages, "**Error:** upload an image first."
            return
        if not question:
            yield messages, READY
            return
        notices = self.notices.setdefault(key, [])
        notices.clear()
        messages += [{"role": "user", "content": question},
                     {"role": "assistant", "content": ""}]
        start = time.perf_counter()
        try:
            for piece in session.ask_stream(question):
                messages[-1] = {"role": "assistant", "content": messages[-1]["content"] + piece}
                yield list(messages), "Answering..."
        except ValueError as e:       # the question alone is longer than the context
            yield messages[:-2], f"**Error:** {e}"
            return
        status = f"Answered in {time.perf_counter() - start:.1f} s."
        yield messages, " ".join([*notices, status])

    def warm_up(self):
        """Trace (and with XLA compile) the decoding steps once, on a blank image, so the first
        visitor's answer does not wait for it; returns the seconds it took."""
        import numpy as np

        start = time.perf_counter()
        size = self.generator.preprocessor.image_size
        pieces = self.generator.stream([np.zeros((size, size, 3), "float32")],
                                       [[{"from": "human", "value": "hello"}]])
        next(pieces, None)      # the prefill and one step: every function is traced
        pieces.close()
        return time.perf_counter() - start

    def clear(self, key):
        session = self._session(key)
        if session is not None:
            session.reset()
        return [], ("Conversation cleared. " + READY) if session else "Upload an image to start."

    def forget(self, key):
        self.sessions.pop(key, None)
        self.notices.pop(key, None)


def build_app(task, generate_config, *, title=TITLE, model_name=""):
    """The ``gradio.Blocks`` page for ``task`` with the decoding settings ``generate_config``."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    import gradio as gr

    from vit_tf.models.generation import Generator

    server = ChatServer(Generator.from_config(task, generate_config),
                        image_loader(task.preprocessor))
    with gr.Blocks(title=title, analytics_enabled=False) as demo:
        gr.Markdown(f"## {title}" + (f" — `{model_name}`" if model_name else ""))
        with gr.Row():
            with gr.Column(scale=1):
                upload = gr.File(label="Image (PNG or JPEG)", file_types=["image"],
                                 type="filepath", elem_id="upload")
                preview = gr.Image(label="The model sees", interactive=False, type="filepath",
                                   elem_id="preview", height=240)
            with gr.Column(scale=2):
                # The answer exactly as the model wrote it (no Markdown: "*" or "#" stay).
                chat = gr.Chatbot(label="Conversation", elem_id="chat", height=360,
                                  render_markdown=False)
                status = gr.Markdown("Upload an image to start.", elem_id="status")
                question = gr.Textbox(label="Question", placeholder="Ask about the image",
                                      elem_id="question", lines=1)
                with gr.Row():
                    send = gr.Button("Send", variant="primary", elem_id="send")
                    clear = gr.Button("Clear", elem_id="clear")

        def on_upload(path, request: gr.Request):
            messages, text = server.set_image(request.session_hash, path)
            if messages is None:          # refused: keep the conversation and the preview
                return gr.update(), gr.update(), text
            return messages, path, text

        def on_ask(text, messages, request: gr.Request):
            for messages, note in server.ask(request.session_hash, text, messages):
                yield messages, note, ""

        def on_clear(request: gr.Request):
            return server.clear(request.session_hash)

        upload.change(on_upload, [upload], [chat, preview, status])
        for event in (send.click, question.submit):
            event(on_ask, [question, chat], [chat, status, question])
        clear.click(on_clear, None, [chat, status])
        def on_leave(request: gr.Request):
            server.forget(request.session_hash)

        demo.unload(on_leave)
    demo.vit_tf_server = server
    return demo


def serve(model, host=DEFAULT_HOST, port=DEFAULT_PORT, generate_config=None, block=True):
    """Load ``model`` (a preset, run folder or ``.keras`` file) and serve its chat page."""
    from vit_tf.runs import generate_defaults, load_task

    task = load_task(model)       # first: a bad --model fails before Gradio is imported
    import gradio as gr

    demo = build_app(task, generate_config or generate_defaults(model),
                     model_name=os.path.basename(os.path.normpath(str(model))))
    print(f"warmed up the decoding loop in {demo.vit_tf_server.warm_up():.1f} s", flush=True)
    theme = gr.themes.Default(font=["ui-sans-serif", "system-ui", "sans-serif"],
                              font_mono=["ui-monospace", "monospace"])   # no web fonts
    demo.queue().launch(server_name=host, server_port=port, share=False, theme=theme,
                        prevent_thread_lock=not block, show_error=True, quiet=False,
                        ssr_mode=False)
    return demo
