"""vit_tf: visual instruction tuning in Keras 3 / TensorFlow.

Data flow: ``vit_tf.data`` (sources -> pipeline) -> ``vit_tf.models`` (image encoder ->
projector -> decoder) -> ``vit_tf.training`` (model.fit) -> ``vit_tf.inference`` /
``vit_tf.eval`` / ``vit_tf.export``.
"""

__version__ = "0.1.0"
