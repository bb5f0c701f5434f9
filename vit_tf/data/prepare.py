"""Read + validate + tokenize a LLaVA-format file in one step, with one report for every problem.

The context-length check needs the tokenizer, and the tokenizer is learned from the valid
records, so this runs in two passes: structural and image checks first (``read_llava``), then
the length check; all problems end up in the same ``ValidationReport``.
"""

from vit_tf.data.pipeline import text_length_fn
from vit_tf.data.sources import DataValidationError, Problem, read_llava
from vit_tf.data.tokenizer import conversation_texts, train_tokenizer


def prepare_records(json_path, image_root, *, max_text_length, tokenizer=None,
                    vocabulary_size=None, skip_invalid=False):
    """-> (valid records, tokenizer, report). Raises ``DataValidationError`` unless skip_invalid.

    ``tokenizer`` is reused when given (resume, evaluation); else one is trained on the valid
    records with at most ``vocabulary_size`` entries.
    """
    dataset = read_llava(json_path, image_root, skip_invalid=True)
    report = dataset.report
    records = dataset.records
    if tokenizer is None:
        tokenizer = train_tokenizer(conversation_texts(records), vocabulary_size)
    length = text_length_fn(tokenizer)
    kept = []
    for record in records:
        n = length(record)
        if n > max_text_length:
            report.problems.append(Problem(
                file=str(json_path), record_id=record["id"], field="conversations",
                message=f"text is {n} tokens, longer than the context (data.max_text_length="
                        f"{max_text_length})",
                kind="text too long",
            ))
        else:
            kept.append(record)
    report.n_valid = len(kept)
    if not report.ok and not skip_invalid:
        raise DataValidationError(report)
    if not kept:
        raise DataValidationError(report)
    return kept, tokenizer, report
