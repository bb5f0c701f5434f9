"""Text-only chat data for stage 2 (LLaVA-1.5's remedy for a tuned LM that forgets how it
chats): varied instructions with no image, answered by the original LM itself.

Tuning on short image answers ("Paris", "blue") teaches the LM to answer everything in a few
words; LLaVA-1.5 mixes text-only conversations into stage 2 so the LM keeps its manner where no
image is shown. Here the answers are the original SmolLM2's own greedy answers (self-distilled:
``vit_tf.experiments.smollm2_vision lm-chat`` generates them), so the text-only examples ask the
tuned LM to keep doing exactly what it did.

- ``chat_prompts(n, seed)``: ``n`` distinct instructions drawn from templates and word lists
  (facts, arithmetic, definitions, explanations, short writing, lists, translations, advice,
  comparisons, conversions, how-to, trivia). None of them asks a question of
  ``vit_tf.eval.lm_retention.PROMPTS`` (``overlapping`` checks it; the command refuses prompts
  that overlap).
- The file is LLaVA JSON without an ``image`` field (the shape of LLaVA-1.5's own text-only
  records)::

      [{"id": "chat-0000", "category": "text_chat", "finished": true,
        "conversations": [{"from": "human", "value": "Define the word 'harbor'."},
                          {"from": "gpt", "value": "A harbor is ..."}]}]

  ``finished`` is false when the answer stopped at the token limit, not at the LM's stop token:
  its end marker is then left out of the loss (``untrain_unfinished_ends``), so the tuned LM is
  not taught to stop there.
- ``read_text_chat(path)`` validates every record (the LLaVA rules, with ``<image>`` and
  ``image`` forbidden) and raises ``DataValidationError`` naming the file, record id and field.
  Records come back with ``image_path=""``: training knows them as text-only
  (``vit_tf.training.feature_training``: their image prefix is masked out).
"""

import re

import numpy as np

from vit_tf.data.sources.llava import (IMAGE_TOKEN, _duplicate_ids, _id_problems,
                                       _order_problems, _turn_problems)
from vit_tf.data.sources.validation import (DataValidationError, Problem, ValidationReport,
                                            file_problem)

CATEGORY = "text_chat"

_COUNTRIES = ("Japan", "Italy", "Canada", "Egypt", "Kenya", "Norway", "Mexico", "India",
              "Germany", "Australia", "Spain", "Peru", "Greece", "Turkey", "Sweden", "Chile")
_WORDS = ("harbor", "curious", "whisper", "ancient", "journey", "gentle", "puzzle", "meadow",
          "brave", "lantern", "orbit", "humble", "thunder", "recipe", "glacier", "vivid",
          "festival", "compass", "rhythm", "library")
_CONCEPTS = ("photosynthesis", "gravity", "democracy", "a volcano", "electricity", "an atom",
             "a rainbow", "inflation", "a vaccine", "the internet", "a black hole", "evolution",
             "a battery", "recycling", "an earthquake", "a computer program", "friction",
             "the moon's phases", "a calendar", "a budget")
_TOPICS = ("autumn leaves", "a quiet library", "a mountain sunrise", "a busy city street",
           "a cup of tea", "a rainy afternoon", "friendship", "a lost key", "the desert at night",
           "a garden in spring", "a train journey", "snowfall", "an old clock", "the stars")
_THINGS = ("vegetables", "musical instruments", "board games", "types of clouds",
           "kitchen tools", "sports played with a ball", "birds", "planets in the solar system",
           "famous painters", "programming languages", "trees", "insects", "breakfast foods",
           "ways to save energy", "hobbies you can do indoors", "things to pack for a picnic")
_PHRASES = ("good morning", "good night", "see you soon", "excuse me", "how are you",
            "I am hungry", "where is the station", "happy birthday")
_LANGUAGES = ("French", "German", "Italian", "Japanese")
_GOALS = ("sleep better", "learn a new language", "stay focused while studying",
          "save money each month", "keep a plant alive", "start running", "cook rice",
          "write a good email", "remember names", "reduce stress", "organize a small room",
          "prepare for a job interview")
_PAIRS = (("a cat", "a horse"), ("the Sun", "the Earth"), ("a lake", "an ocean"),
          ("a mouse", "an elephant"), ("a minute", "an hour"), ("a village", "a city"),
          ("a pebble", "a boulder"), ("Mars", "Jupiter"))
_UNITS = (("minutes", "hour"), ("seconds", "minute"), ("months", "year"),
          ("centimeters", "meter"), ("grams", "kilogram"), ("meters", "kilometer"),
          ("hours", "day"), ("years", "century"))
_FORMS = ("a haiku", "a two-line rhyme", "the opening line of a story", "a limerick",
          "a short thank-you note", "a product review")
_PEOPLE = ("a teacher", "a neighbor", "a friend who helped you move", "a bus driver",
           "your grandmother", "a new colleague", "a doctor", "a librarian")
_DIFFERENCES = (("weather", "climate"), ("a virus", "a bacterium"), ("a lake", "a pond"),
                ("speed", "velocity"), ("a frog", "a toad"), ("an alligator", "a crocodile"),
                ("baking", "roasting"), ("a poem", "a song"), ("a town", "a city"),
                ("a star", "a planet"), ("hardware", "software"), ("a loan", "a gift"))
_HABITS = ("drinking enough water", "reading every day", "walking after dinner",
           "learning to cook", "keeping a journal", "getting up early", "playing chess",
           "learning to swim", "gardening", "volunteering")
_TRIVIA = ("Who painted the Mona Lisa?", "Why is the sky blue?", "How do plants drink water?",
           "What causes the seasons?", "Who was Albert Einstein?", "What is a haiku?",
           "Why do leaves change color in autumn?", "How does a compass work?",
           "What is the tallest mountain in the world?", "Who invented the telephone?",
           "What is the freezing point of water in Fahrenheit?", "Why do cats purr?",
           "What is the longest river in Africa?", "How do airplanes stay in the air?",
           "What is the smallest prime number?", "Which gas do plants take in from the air?",
           "What is a noun?", "Why do we have leap years?", "What is the Great Wall of China?",
           "How does the heart pump blood?", "Introduce yourself in one sentence.",
           "Tell me a short joke.", "Give me a fun fact about octopuses.",
           "What is your favorite season and why?", "Suggest a name for a pet goldfish.",
           "Describe the color green to someone who cannot see.")

_TEMPLATES = (
    ("capital", "Which city is the capital of {}?", (_COUNTRIES,)),
    ("times", "Compute {} times {}.", (range(3, 13), range(11, 40))),
    ("minus", "What is {} minus {}?", (range(40, 100), range(11, 39))),
    ("sum", "Add {} and {}.", (range(21, 90), range(13, 70))),
    ("divide", "What is {} divided by {}?", ((24, 36, 48, 60, 72, 84, 96), (2, 3, 4, 6, 12))),
    ("define", "Define the word '{}'.", (_WORDS,)),
    ("sentence", "Use the word '{}' in a sentence.", (_WORDS,)),
    ("explain", "Explain {} in simple terms.", (_CONCEPTS,)),
    ("poem", "Write a short poem about {}.", (_TOPICS,)),
    ("describe", "Describe {} in two sentences.", (_TOPICS,)),
    ("list", "List three {}.", (_THINGS,)),
    ("name", "Name four {}.", (_THINGS,)),
    ("say", "How do you say '{}' in {}?", (_PHRASES, _LANGUAGES)),
    ("advice", "Give me a tip to {}.", (_GOALS,)),
    ("howto", "How can I {}?", (_GOALS,)),
    ("compare", "Which is bigger, {} or {}?", (_PAIRS,)),
    ("convert", "How many {} make one {}?", (_UNITS,)),
    ("form", "Write {} about {}.", (_FORMS, _TOPICS)),
    ("note", "Write a short thank-you message to {}.", (_PEOPLE,)),
    ("difference", "What is the difference between {} and {}?", (_DIFFERENCES,)),
    ("benefits", "What are the benefits of {}?", (_HABITS,)),
    ("summary", "Summarize what {} is in one sentence.", (_CONCEPTS,)),
    ("trivia", "{}", (_TRIVIA,)),
)

_STOP = frozenset("a an the is are was of in on to and or for me what which who how do does "
                  "you your my i it be by with".split())


def _content_words(text):
    return frozenset(w for w in re.findall(r"[a-z0-9']+", text.lower()) if w not in _STOP)


def overlapping(prompt, others, threshold=0.5):
    """The ``others`` that ``prompt`` asks again: the same words once case and punctuation are
    gone, one containing the other, or content words (no stop words) whose Jaccard overlap is
    at least ``threshold`` ("What's the capital of France" vs "What is the capital of France?")."""
    found, words = [], _content_words(prompt)
    flat = " ".join(re.findall(r"[a-z0-9']+", prompt.lower()))
    for other in others:
        other_flat = " ".join(re.findall(r"[a-z0-9']+", other.lower()))
        other_words = _content_words(other)
        union = words | other_words
        jaccard = len(words & other_words) / len(union) if union else 1.0
        if flat == other_flat or other_flat in flat or flat in other_flat or \
                jaccard >= threshold:
            found.append(other)
    return found


def _fill(template, slots, rng):
    values = []
    for slot in slots:
        value = slot[int(rng.integers(len(slot)))]
        values.extend(value if isinstance(value, tuple) else (value,))
    return template.format(*values)


def chat_prompts(n, seed=0, exclude=()):
    """``n`` distinct text-only instructions, drawn round-robin over the templates (so every
    kind is represented) with seeded slot values; none ``overlapping`` ``exclude``."""
    rng, prompts, seen = np.random.default_rng(seed), [], set()
    for attempt in range(200 * n):
        if len(prompts) == n:
            return prompts
        _, template, slots = _TEMPLATES[attempt % len(_TEMPLATES)]
        prompt = _fill(template, slots, rng)
        if prompt in seen or (exclude and overlapping(prompt, exclude)):
            continue
        seen.add(prompt)
        prompts.append(prompt)
    if len(prompts) < n:
        raise ValueError(f"the templates give only {len(prompts)} distinct prompts, not {n}")
    return prompts


def chat_records(prompts, answers, finished, generator):
    """The file's records: one single-turn conversation per prompt."""
    return [{"id": f"chat-{i:04d}", "category": CATEGORY, "finished": bool(done),
             "generator": generator,
             "conversations": [{"from": "human", "value": p}, {"from": "gpt", "value": a}]}
            for i, (p, a, done) in enumerate(zip(prompts, answers, finished))]


def read_text_chat(path):
    """Validated text-only records of ``path`` with ``image_path=""``; every problem raises
    one ``DataValidationError`` naming the file, the record id and the field."""
    import json

    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, ValueError) as e:
        raise DataValidationError(file_problem(
            path, f"cannot read a JSON file ({e})", "unreadable file")) from None
    if not isinstance(data, list):
        raise DataValidationError(file_problem(
            path, "top level must be a list of records", "not a list"))
    problems, records = [], []
    duplicates = dict(_duplicate_ids(data, path))
    for index, record in enumerate(data):
        rid = str(record.get("id", f"#{index}")) if isinstance(record, dict) else f"#{index}"

        def problem(field, message, kind, rid=rid):
            return Problem(path, rid, field, message, kind)

        if not isinstance(record, dict):
            found = [problem("-", "record must be an object", "bad record")]
        else:
            found = _id_problems(record, problem) + _text_problems(record, problem)
        if index in duplicates:
            found.append(duplicates[index])
        problems += found
        if not found:
            records.append({**record, "id": str(record["id"]), "image_path": "",
                            "category": record.get("category", CATEGORY)})
    report = ValidationReport(problems, len(data), len(records))
    if problems:
        raise DataValidationError(report)
    return records


def _text_problems(record, problem):
    if "image" in record:
        return [problem("image", "a text-only record has no image (use a LLaVA data file for "
                        "records with images)", "image in text-only data")]
    turns = record.get("conversations")
    if not isinstance(turns, list) or not turns:
        return [problem("conversations", "conversations must be a non-empty list of turns",
                        "bad conversations")]
    problems = []
    for i, turn in enumerate(turns):
        problems += _turn_problems(turn, f"conversations[{i}]", problem)
    if problems:
        return problems
    problems += _order_problems(turns, problem)
    for i, turn in enumerate(turns):
        if IMAGE_TOKEN in turn["value"]:
            problems.append(problem(f"conversations[{i}].value",
                                    f"{IMAGE_TOKEN!r} in text-only data", "extra <image>"))
    if not isinstance(record.get("finished", True), bool):
        problems.append(problem("finished", "finished must be true or false", "bad finished"))
    return problems


def untrain_unfinished_ends(examples, records, end_length):
    """Leave the final end marker (``end_length`` ids) of each ``finished: false`` record out
    of the loss, in place; returns how many records that touched. An answer cut by the token
    limit did not end there, so the marker after it would teach the LM to stop early."""
    touched = 0
    for i, record in enumerate(records):
        if record.get("finished", True):
            continue
        trained = np.flatnonzero(examples.trained[i])
        examples.trained[i, trained[-end_length:]] = False
        touched += 1
    return touched
