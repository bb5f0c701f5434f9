"""Read + validate + tokenize a LLaVA-format file in one step, with one report for every problem.

The context-length check needs the tokenizer, and our tokenizer is learned from the valid
records, so this runs in two passes: structural and image checks first (``read_llava``), then
the length check; all problems end up in the same ``ValidationReport``.
"""

from vit_tf.data.pipeline import text_lengths
from vit_tf.data.sources import DataValidationError, Problem, read_llava
from vit_tf.data.tokenizer import conversation_texts


def check_lengths(records, preprocessor, max_text_length, report, source):
    """Records whose conversation fits ``max_text_length``; each other one is added to
    ``report`` (file, record id, field)."""
    kept = []
    for record, n in zip(records, text_lengths(preprocessor, records)):
        if n > max_text_length:
            report.problems.append(Problem(
                file=str(source), record_id=record["id"], field="conversations",
                message=f"text is {n} tokens, longer than the context (data.max_text_length="
                        f"{max_text_length})",
                kind="text too long",
            ))
        else:
            kept.append(record)
    report.n_valid = len(kept)
    return kept


def prepare_records(json_path, image_root, *, max_text_length, preprocessor=None,
                    make_preprocessor=None, skip_invalid=False):
    """-> (valid records, preprocessor, report). Raises ``DataValidationError`` unless
    skip_invalid.

    ``preprocessor`` is reused when given (resume, evaluation); else
    ``make_preprocessor(texts)`` builds one from the valid records' texts (our WordPiece is
    trained on them).
    """
    dataset = read_llava(json_path, image_root, skip_invalid=True)
    report = dataset.report
    records = dataset.records
    if preprocessor is None:
        preprocessor = make_preprocessor(conversation_texts(records))
    kept = check_lengths(records, preprocessor, max_text_length, report, json_path)
    if not report.ok and not skip_invalid:
        raise DataValidationError(report)
    if not kept:
        raise DataValidationError(report)
    return kept, preprocessor, report
