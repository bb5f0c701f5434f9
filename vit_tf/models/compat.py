"""Which model parts go together: nonsensical combinations are refused before building.

Example:
    >>> check_model_config(apply_overrides(ExperimentConfig(), ["model.fusion.num_queries=0"]))
    Traceback (most recent call last):
    ConfigError: model.fusion.num_queries must be >= 1 for the resampler fusion, got 0
"""

from vit_tf.config import ConfigError


def check_model_config(config):
    """Raise ``ConfigError`` naming the key if ``config.model`` cannot be built sensibly."""
    m = config.model
    # Unknown part names are left to the registries (KeyError listing the known names).
    if m.decoder.num_layers < 1:
        raise ConfigError(f"model.decoder.num_layers must be >= 1, got {m.decoder.num_layers}")
    if m.fusion.name == "resampler":
        if m.fusion.num_queries < 1:
            raise ConfigError("model.fusion.num_queries must be >= 1 for the resampler fusion, "
                              f"got {m.fusion.num_queries}")
        if m.fusion.resampler_layers < 1:
            raise ConfigError("model.fusion.resampler_layers must be >= 1 for the resampler "
                              f"fusion, got {m.fusion.resampler_layers}")
    if m.fusion.name in ("cross_attention", "resampler") and m.decoder.hidden_dim % m.fusion.num_heads:
        raise ConfigError(
            f"model.fusion.num_heads={m.fusion.num_heads} must divide model.decoder.hidden_dim="
            f"{m.decoder.hidden_dim} for the {m.fusion.name} fusion"
        )
    if m.decoder.name == "transformer" and m.decoder.hidden_dim % m.decoder.num_heads:
        raise ConfigError(f"model.decoder.num_heads={m.decoder.num_heads} must divide "
                          f"model.decoder.hidden_dim={m.decoder.hidden_dim}")
