"""Loading run folders and presets, for every command and layer that needs a trained model.

A neutral module between training and the parts that use a trained model (inference, eval,
export): they load runs and presets from here, so none of them imports ``vit_tf.training``.
(Placeholder: the loading code moves here from ``vit_tf.training.run_dir`` in the task-API
refactor; the layering contracts in ``pyproject.toml`` already place this module.)
"""
