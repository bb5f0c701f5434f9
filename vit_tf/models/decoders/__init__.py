"""Language decoders: token ids (+ image tokens through a fusion) -> next-token logits."""
