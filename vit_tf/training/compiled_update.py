"""The optimizer's update as one XLA computation inside a training step that is not XLA-compiled.

Why: with ``train.jit_compile=false`` the model's forward and backward run as TensorFlow ops
(oneDNN's kernels on CPU): the path for steps that XLA compiles slowly or not at all (the
SmolLM2 stage 2 in ``mixed_bfloat16`` on this CPU, vit_tf/experiments/smollm2_stage2_lora.py),
and the faster one on a 2-core CPU under heavy load. The optimizer then runs as ~15 small ops
per variable (AdamW moments, bias correction, decoupled weight decay, per-variable clipping,
the grad_norm telemetry): ~2,000 op dispatches per step for ~150 variables. Compiled, they
become a handful of fused loops. (On an idle machine the XLA-compiled step, the default, is
faster still at the issue-16 size: benchmarks/results.md.)

``CompiledUpdate`` (an optimizer mixin, used by ``vit_tf.training.optim.PartAdamW``) wraps
``apply(grads, variables)`` in a ``tf.function(jit_compile=True)`` when ``compile_update`` is
set (``compile_model`` sets it when the step itself is not XLA-compiled). The update is the
same computation, compiled: the same variables are updated by the same formulas
(tests/training/test_compiled_update.py). It stays off under a ``tf.distribute`` strategy
(the replicas' update goes through the strategy's own cross-replica calls).
"""

import tensorflow as tf


class CompiledUpdate:
    """Optimizer mixin: ``apply`` runs as one XLA-compiled function when ``compile_update``."""

    compile_update = False

    def apply(self, grads, trainable_variables=None):
        grads = list(grads)
        if not self.compile_update or not grads or tf.distribute.has_strategy():
            return super().apply(grads, trainable_variables)
        variables = list(trainable_variables) if trainable_variables is not None else None
        if variables is not None and not self.built:
            self.build(variables)      # slot variables are created outside the compiled function
        key = None if variables is None else tuple(id(v) for v in variables)
        compiled = getattr(self, "_compiled_updates", None)
        if compiled is None:
            compiled = self._compiled_updates = {}
        if key not in compiled:
            parent = super()
            compiled[key] = tf.function(lambda g: parent.apply(g, variables), jit_compile=True)
        return compiled[key](grads)
