"""The project's own VLM as a judge of generated images (DSG-style questions, VQAScore-style
probabilities), and its agreement with the exact parser.

Each prompt's spec becomes questions in the phrasing the shapes-world VLM was trained on
(``vit_tf.data.shapes_questions``), each with the answer the prompt demands:

    every object          "Is there a red circle in the image?"                -> yes
    sizes that matter     "Is there a small red circle in the image?"           -> yes
      (size_binding, exact)
    cells off the middle  "Is the red circle on the left or the right?"         -> left
      (position, exact)   "Is the red circle at the top or the bottom?"         -> top
    counts                "How many objects are there?" / "How many circles are there?" -> 2

The VLM is used only through its public surface: ``vit_tf.runs.load_task`` and the task's
preprocessor and forward pass. Its answer is the most likely first answer token (every
expected answer is one token, checked), and ``p_expected`` the probability of the expected one:
for yes/no questions that is VQAScore's P(yes | image, question) (Lin et al. 2024).
The parser answers the same questions from the parsed scene, so the two are compared on equal
terms: an image passes for a reader when every answer is the demanded one, and the agreement is
the fraction of images on which the judge's and the parser's verdicts coincide.

Example::

    judge = VLMJudge(load_task("quickstart_out/run"))
    rows = judge.judge(specs, images)    # per image: verdicts, P(yes), answers
"""

import numpy as np

from vit_tf.inference.first_token import first_token_probs
from vit_tf.t2i.parser import parse_image

_COUNT_TASKS = {"single_object", "two_object", "exact"}


def questions_for(spec):
    """[(question, expected answer, kind)] for one ``PromptSpec`` (see the module docstring)."""
    out = []
    sized = spec.task in ("size_binding", "exact")
    placed = spec.task in ("position", "exact")
    for i, o in enumerate(spec.objects):
        name = f"{o.color} {o.shape}"
        out.append((f"Is there {_article(name)} in the image?", "yes", ("exists", o.color,
                                                                      o.shape, None)))
        if sized:
            out.append((f"Is there {_article(o.size + ' ' + name)} in the image?", "yes",
                        ("exists", o.color, o.shape, o.size)))
        if placed and o.cell is not None:
            if o.cell[1] != 1:
                a, b = ("left", "right") if i % 2 == 0 else ("right", "left")
                out.append((f"Is the {name} on the {a} or the {b}?",
                            "left" if o.cell[1] == 0 else "right", ("x", o.color, o.shape)))
            if o.cell[0] != 1:
                a, b = ("top", "bottom") if i % 2 == 0 else ("bottom", "top")
                out.append((f"Is the {name} at the {a} or the {b}?",
                            "top" if o.cell[0] == 0 else "bottom", ("y", o.color, o.shape)))
    if spec.task == "counting":
        out.append((f"How many {spec.objects[0].shape}s are there?", str(len(spec.objects)),
                    ("count", spec.objects[0].shape)))
    elif spec.task in _COUNT_TASKS:
        out.append(("How many objects are there?", str(len(spec.objects)), ("count", None)))
    return out


def _article(phrase):
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def parser_answer(kind, scene):
    """The answer the parsed ``scene`` gives to a question of ``kind``."""
    objs = scene.objects
    if kind[0] == "exists":
        _, color, shape, size = kind
        found = any(o.color == color and o.shape == shape and (size is None or o.size == size)
                    for o in objs)
        return "yes" if found else "no"
    if kind[0] in ("x", "y"):
        match = [o for o in objs if (o.color, o.shape) == kind[1:]]
        if len(match) != 1:
            return None                                   # nothing to locate
        x, y = match[0].center
        half = scene.canvas_size / 2
        if kind[0] == "x":
            return "left" if x < half else "right"
        return "top" if y < half else "bottom"
    shape = kind[1]
    return str(sum(shape is None or o.shape == shape for o in objs))


class VLMJudge:
    """Questions a trained shapes-world VLM (a ``VisionLanguageModel``) about images."""

    def __init__(self, vlm, batch_size=64):
        self.vlm = vlm
        self.pre = vlm.preprocessor
        self.batch_size = batch_size
        if self.pre.image_size != vlm.image_size:
            raise ValueError("the VLM's preprocessor and model disagree on the image size")

    def _answer_id(self, answer):
        ids = self.pre.encode_conversations([[{"from": "gpt", "value": answer}]])[0][0]
        body = [int(i) for i in ids[1:-2]]        # drop the role marker, <|end|> and [PAD]
        if len(body) != 1:
            raise ValueError(f"judge answer {answer!r} is {len(body)} tokens for this VLM's "
                             "tokenizer; only one-token answers can be scored")
        return body[0]

    def first_token_probs(self, images, questions):
        """(n,) images (uint8 arrays) x (n,) questions -> (n, vocabulary) probabilities of the
        first answer token (``vit_tf.inference.first_token``)."""
        return first_token_probs(self.vlm, images, questions, self.batch_size)

    def judge(self, specs, images, config=None):
        """One row per image: questions, the judge's and the parser's answers, P(expected),
        both verdicts, and ``vqascore`` (mean P(yes) over its yes/no questions)."""
        from vit_tf.data.shapes_scene import ShapesConfig

        config = config or ShapesConfig()
        flat_images, flat_q, owners = [], [], []
        per_image = [questions_for(s) for s in specs]
        for k, (image, qs) in enumerate(zip(images, per_image)):
            for q in qs:
                flat_images.append(image)
                flat_q.append(q[0])
                owners.append(k)
        probs = self.first_token_probs(np.asarray(flat_images), flat_q)
        answer_ids = {}
        rows, cursor = [], 0
        for k, (image, qs) in enumerate(zip(images, per_image)):
            scene = parse_image(image, config).scene
            row = {"questions": [], "judge_pass": True, "parser_pass": True}
            p_yes = []
            for question, expected, kind in qs:
                p = probs[cursor]
                cursor += 1
                if expected not in answer_ids:
                    answer_ids[expected] = self._answer_id(expected)
                judge_answer = self.pre.id_to_token(int(p.argmax()))
                p_expected = float(p[answer_ids[expected]])
                truth = parser_answer(kind, scene)
                row["questions"].append({"question": question, "expected": expected,
                                         "judge": judge_answer, "parser": truth,
                                         "p_expected": p_expected})
                row["judge_pass"] &= judge_answer == expected
                row["parser_pass"] &= truth == expected
                if expected == "yes":
                    p_yes.append(p_expected)
            row["vqascore"] = float(np.mean(p_yes)) if p_yes else None
            row["log_p"] = float(sum(np.log(q["p_expected"] + 1e-12) for q in row["questions"]))
            row["agree"] = row["judge_pass"] == row["parser_pass"]
            rows.append(row)
        return rows


def agreement(rows):
    """{"images", "agreement" (verdicts equal), "question_agreement" (answers equal where the
    parser could answer), "judge_pass", "parser_pass", "vqascore"}."""
    pairs = [(q["judge"], q["parser"]) for r in rows for q in r["questions"]
             if q["parser"] is not None]
    scores = [r["vqascore"] for r in rows if r["vqascore"] is not None]
    return {"images": len(rows),
            "agreement": float(np.mean([r["agree"] for r in rows])) if rows else None,
            "question_agreement": float(np.mean([a == b for a, b in pairs])) if pairs else None,
            "judge_pass": float(np.mean([r["judge_pass"] for r in rows])) if rows else None,
            "parser_pass": float(np.mean([r["parser_pass"] for r in rows])) if rows else None,
            "vqascore": float(np.mean(scores)) if scores else None}
