"""Read VQA-style question and answer files: several human answers per question.

The format of VQA v2 (``v2_OpenEnded_mscoco_val2014_questions.json`` and
``v2_mscoco_val2014_annotations.json``)::

    questions:   {"data_subtype": "val2014",
                  "questions": [{"question_id": 1, "image_id": 42, "question": "What ...?"}]}
    annotations: {"annotations": [{"question_id": 1, "image_id": 42, "answer_type": "other",
                   "multiple_choice_answer": "red",
                   "answers": [{"answer": "red", "answer_id": 1, ...}, ... 10 in all]}]}

Each question becomes one record: the human turn is ``<image>\\n`` + the question, the assistant
turn the ``multiple_choice_answer`` (the most common human answer when it is absent), and
``answers`` keeps every human answer so :func:`vit_tf.eval.metrics.vqa_accuracy` can score it.
``category`` is the ``answer_type`` ("yes/no", "number", "other") when given. Image files are
named by ``image_pattern``, formatted with ``image_id`` and the questions file's
``data_subtype`` (COCO's ``COCO_val2014_000000000042.jpg`` by default).

Example:
    >>> data = read_vqa("questions.json", "annotations.json", "val2014")
    >>> data.records[0]["answers"]   # the 10 human answers
"""

import collections

from vit_tf.data.sources.common import finish_records, is_id, is_text, load_json_object
from vit_tf.data.sources.llava import IMAGE_TOKEN
from vit_tf.data.sources.validation import Problem

DEFAULT_IMAGE_PATTERN = "COCO_{data_subtype}_{image_id:012d}.jpg"


def read_vqa(questions_path, annotations_path, image_root, *,
             image_pattern=DEFAULT_IMAGE_PATTERN, skip_invalid=False, check_images=True,
             num_workers=None):
    """Read a VQA questions file and its annotations; returns a ``LlavaDataset``.

    Problems name the file, the question id and the field, e.g.
    ``annotations.json: record '7' field annotations[3].answers[2].answer: answer is empty``.
    """
    questions_path, annotations_path = str(questions_path), str(annotations_path)
    questions = load_json_object(questions_path, ("questions",))
    annotations = load_json_object(annotations_path, ("annotations",))
    subtype = questions.get("data_subtype", "")

    by_question = {}
    extra = []
    for i, ann in enumerate(annotations["annotations"]):
        problems = []
        if not isinstance(ann, dict) or not is_id(ann.get("question_id")):
            extra.append(Problem(annotations_path, f"#{i}", f"annotations[{i}].question_id",
                                 "annotation has no usable 'question_id'", "missing id"))
            continue
        qid = str(ann["question_id"])
        if qid in by_question:
            extra.append(Problem(annotations_path, qid, f"annotations[{i}].question_id",
                                 "a second annotation for this question", "duplicate id"))
            continue
        answers = ann.get("answers")
        if not isinstance(answers, list) or not answers:
            problems.append(Problem(annotations_path, qid, f"annotations[{i}].answers",
                                    "answers must be a non-empty list", "missing answers"))
            answers = []
        texts = []
        for j, entry in enumerate(answers):
            text = entry.get("answer") if isinstance(entry, dict) else None
            if not is_text(text):
                problems.append(Problem(annotations_path, qid,
                                        f"annotations[{i}].answers[{j}].answer",
                                        "answer is missing, empty or not a string",
                                        "bad answer"))
            else:
                texts.append(text.strip())
        best = ann.get("multiple_choice_answer")
        if best is not None and not is_text(best):
            problems.append(Problem(annotations_path, qid,
                                    f"annotations[{i}].multiple_choice_answer",
                                    "multiple_choice_answer must be a non-empty string",
                                    "bad answer"))
        answer_type = ann.get("answer_type", "")
        by_question[qid] = (texts, best.strip() if is_text(best) else None,
                            answer_type if isinstance(answer_type, str) else "", problems)

    converted = []
    seen_questions = set()
    for i, q in enumerate(questions["questions"]):
        field = f"questions[{i}]"
        if not isinstance(q, dict) or not is_id(q.get("question_id")):
            converted.append(({"id": f"#{i}"}, [Problem(
                questions_path, f"#{i}", f"{field}.question_id",
                "question has no usable 'question_id'", "missing id")]))
            continue
        qid = str(q["question_id"])
        seen_questions.add(qid)
        problems = []
        if not is_text(q.get("question")):
            problems.append(Problem(questions_path, qid, f"{field}.question",
                                    "question is missing, empty or not a string", "bad question"))
        image_id = q.get("image_id")
        image = None
        if not isinstance(image_id, int) or isinstance(image_id, bool):
            problems.append(Problem(questions_path, qid, f"{field}.image_id",
                                    f"image_id must be an integer, got {image_id!r}",
                                    "missing image_id"))
        else:
            try:
                image = image_pattern.format(image_id=image_id, data_subtype=subtype)
            except (KeyError, ValueError, IndexError) as error:
                raise ValueError(f"image_pattern {image_pattern!r} cannot be formatted with "
                                 f"image_id and data_subtype: {error}") from error
        if qid not in by_question:
            problems.append(Problem(annotations_path, qid, "annotations",
                                    "no annotation (human answers) for this question",
                                    "missing answers"))
            converted.append(({"id": qid}, problems))
            continue
        texts, best, answer_type, answer_problems = by_question[qid]
        problems += answer_problems
        if problems:
            converted.append(({"id": qid}, problems))
            continue
        best = best or collections.Counter(texts).most_common(1)[0][0]
        converted.append(({"id": qid, "image": image, "category": answer_type,
                           "conversations": [
                               {"from": "human", "value": f"{IMAGE_TOKEN}\n{q['question'].strip()}"},
                               {"from": "gpt", "value": best}],
                           "answers": texts}, []))
    for qid in by_question:
        if qid not in seen_questions:
            extra.append(Problem(annotations_path, qid, "question_id",
                                 "annotation for a question that is not in the questions file",
                                 "unknown question"))
    return finish_records(questions_path, converted, image_root, skip_invalid=skip_invalid,
                          check_images=check_images, num_workers=num_workers,
                          extra_problems=extra)
