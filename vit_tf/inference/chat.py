"""Multi-turn chat about an image, kept within the model's text context.

``ChatSession`` holds the conversation and answers one line at a time; ``run_chat`` is the
terminal loop of ``vit-tf chat`` (any iterable of lines in, any ``write`` function out, so tests
feed it lines). Commands:

    /image PATH   switch to another image (starts a new conversation about it)
    /reset        forget the conversation, keep the image
    /history      show the turns the model currently sees
    /help         list the commands
    /quit         leave (end of input does the same)

Before each answer the oldest (question, answer) pairs are dropped until the prompt plus room
for ``max_new_tokens`` fits the text context, and the session says how many it dropped.

Example:
    >>> session = ChatSession(task.generator(), image_loader(task.preprocessor), "scene.png")
    >>> session.ask("What colour is the circle?")
    'red'
"""

HELP = ("commands: /image PATH (switch image, new conversation), /reset (forget the conversation), "
        "/history (turns the model sees), /help, /quit")


def image_loader(preprocessor):
    """``path -> (S, S, 3) float32`` through the preprocessor (as training loads images);
    ``ValueError`` naming a missing or corrupt file."""
    def load(path):
        from vit_tf.data.sources import load_image_rgb

        load_image_rgb(path)  # raises ValueError naming the file if it is missing or corrupt
        return preprocessor.convert_images(path).numpy()

    return load


class ChatSession:
    """A conversation about one image.

    Args:
        generator: a ``vit_tf.models.generation.Generator`` (``task.generator(...)``).
        load_image: ``path -> (S, S, 3) float32`` image (raises naming the file if it can't).
        image_path: the first image.
        write: where notices (dropped turns) go; ``print`` by default.
    """

    def __init__(self, generator, load_image, image_path, write=print):
        self.generator = generator
        self.load_image = load_image
        self.write = write
        self.history = []
        self.set_image(image_path)

    @property
    def context(self):
        return self.generator.max_text_length

    def set_image(self, path):
        self.image = self.load_image(path)
        self.image_path = path
        self.history = []

    def reset(self):
        self.history = []

    def _length(self, conversation):
        return len(self.generator.prompt_ids([conversation])[0])

    def fit(self, question):
        """History + question, oldest pairs dropped to leave room for the answer -> turns."""
        room = self.context - self.generator.max_new_tokens   # the answer gets all its tokens
        if room < 1:
            raise ValueError(f"max_new_tokens={self.generator.max_new_tokens} leaves no room for "
                             f"a prompt in the model's text context of {self.context} tokens")
        turns = self.history + [{"from": "human", "value": question}]
        dropped = 0
        while len(turns) > 1 and self._length(turns) > room:
            turns = turns[2:]
            dropped += 1
        if self._length(turns) > room:
            raise ValueError(f"this message is {self._length(turns)} tokens; with "
                             f"max_new_tokens={self.generator.max_new_tokens} the model's text "
                             f"context of {self.context} tokens leaves room for {room}")
        if dropped:
            self.write(f"(dropped the {dropped} oldest exchange(s) to stay within the "
                       f"{self.context}-token context)")
        return turns

    def ask(self, question, stream=None):
        """Answer ``question``; ``stream(piece)`` receives the text as it is produced."""
        if stream is not None:
            answer = ""
            for piece in self.ask_stream(question):
                stream(piece)
                answer += piece
            return answer
        turns = self.fit(question)
        answer = self.generator.generate(self.image[None], [turns])[0]
        self.history = turns + [{"from": "gpt", "value": answer}]
        return answer

    def ask_stream(self, question):
        """Yield the answer to ``question`` in pieces as they are produced (all at once for
        beam search); the exchange joins the history when the answer is complete."""
        turns = self.fit(question)
        answer = ""
        if self.generator.is_beam:
            answer = self.generator.generate(self.image[None], [turns])[0]
            yield answer
        else:
            for piece in self.generator.stream_text(self.image, turns):
                answer += piece
                yield piece
        self.history = turns + [{"from": "gpt", "value": answer}]

    def handle(self, line, stream=None):
        """One input line -> False when the session should end."""
        line = line.strip()
        if not line:
            return True
        if line in ("/quit", "/exit"):
            return False
        if line == "/help":
            self.write(HELP)
        elif line == "/reset":
            self.reset()
            self.write("(conversation cleared)")
        elif line == "/history":
            for turn in self.history:
                self.write(f"{'you' if turn['from'] == 'human' else 'model'}: {turn['value']}")
        elif line.startswith("/image"):
            path = line[len("/image"):].strip()
            if not path:
                self.write("usage: /image PATH")
            else:
                try:
                    self.set_image(path)
                    self.write(f"(image: {path}; new conversation)")
                except (OSError, ValueError) as e:
                    self.write(f"error: {e}")
        elif line.startswith("/"):
            self.write(f"unknown command {line.split()[0]!r}; {HELP}")
        else:
            try:
                self.ask(line, stream=stream)
            except ValueError as e:
                self.write(f"error: {e}")
        return True


def run_chat(session, lines, write=print, stream_write=None):
    """Read ``lines`` until /quit or their end; answers are written as ``model: ...``."""
    def stream(piece):
        stream_write(piece)

    write(f"chatting about {session.image_path} ({HELP})")
    for line in lines:
        is_question = line.strip() and not line.strip().startswith("/")
        if is_question and stream_write is not None:
            stream_write("model: ")
            if not session.handle(line, stream=stream):
                break
            stream_write("\n")
            continue
        before = len(session.history)
        if not session.handle(line):
            break
        if is_question and len(session.history) > before:
            write(f"model: {session.history[-1]['value']}")
