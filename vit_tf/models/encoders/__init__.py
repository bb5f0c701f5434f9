"""Image encoders: images (batch, S, S, 3) in [0, 255] -> image tokens (batch, tokens, dim)."""
