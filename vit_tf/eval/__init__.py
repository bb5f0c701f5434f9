"""Evaluation: one pipeline (items -> predictions -> scores -> ``metrics.json``) and its metrics.

    evaluate.py   the pipeline (``evaluate_run``, ``evaluate``) and the ``metrics.json`` schema
    items.py      benchmarks and data files -> evaluation items, the dataset SHA-256
    scoring.py    per-category scores and the printed table
    pope.py       POPE-style yes/no hallucination questions and their scores
    compare.py    ``vit-tf compare``: several reports side by side
    metrics.py    answer normalisation, VQA accuracy, BLEU, CIDEr-D, ROUGE-L
"""
