"""Serving a trained model to people: ``vit-tf serve``, a browser chat (``vit_tf.serve.app``).

A user of a trained model, beside ``vit_tf.eval`` and ``vit_tf.export``: it loads a preset or run
through ``vit_tf.runs`` and talks through ``vit_tf.inference.chat``; it needs no training code.
"""
