"""Optimizer, schedule, loss and metrics for ``model.compile``."""

import keras


def make_schedule(train_config, total_steps):
    """Linear warmup to ``learning_rate``, then cosine decay to ``min_learning_rate``."""
    t = train_config
    warmup = min(t.warmup_steps, max(total_steps - 1, 0))
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0,
        decay_steps=max(total_steps - warmup, 1),
        alpha=t.min_learning_rate / t.learning_rate,
        warmup_target=t.learning_rate,
        warmup_steps=warmup,
    )


def make_optimizer(train_config, total_steps):
    """AdamW; biases, norms and embeddings/position tables are not weight-decayed."""
    optimizer = keras.optimizers.AdamW(
        learning_rate=make_schedule(train_config, total_steps),
        weight_decay=train_config.weight_decay,
        clipnorm=train_config.clipnorm or None,
    )
    optimizer.exclude_from_weight_decay(var_names=["bias", "gamma", "beta", "embeddings"])
    return optimizer


def make_loss():
    """Token cross-entropy averaged over trained tokens: sum(loss * w) / sum(w) per batch.

    The pipeline's sample_weight is 1 on assistant tokens (and their <|end|>), 0 elsewhere, so
    every trained token counts the same however long its example is (pinned in a test).
    """
    return keras.losses.SparseCategoricalCrossentropy(
        from_logits=True, reduction="mean_with_sample_weight"
    )


def compile_model(model, train_config, total_steps):
    model.compile(
        optimizer=make_optimizer(train_config, total_steps),
        loss=make_loss(),
        weighted_metrics=[keras.metrics.SparseCategoricalAccuracy(name="token_accuracy")],
        jit_compile=train_config.jit_compile,
    )
    return model
