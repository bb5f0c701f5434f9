"""Samplers of the two generators, in TF ops (traced once per setting, XLA on CPU):
confidence-ordered parallel decoding for the masked-token generator and DDIM for diffusion,
both with classifier-free guidance and negative prompts.

Guidance (Ho & Salimans 2022): the model runs on the prompt and on the negative prompt (the
empty prompt, i.e. no caption, by default) in one batch of 2B, and
``guided = negative + guidance_scale * (conditional - negative)``: 1 is the plain conditional
model, 0 the negative/unconditional one, > 1 pushes away from the negative prompt.

Randomness: every image has its own seed (``seeds`` (B,)), and its noise is drawn from
``(seed, step)`` alone, so an image depends on its prompt and seed, not on the rest of the batch.
"""

import math

import tensorflow as tf


def row_uniform(seeds, step, shape):
    """(B,) int seeds -> (B, *shape) float32 in (0, 1): row i from the stateless seed
    (seeds[i], step)."""
    step = tf.cast(step, seeds.dtype)
    return tf.map_fn(
        lambda s: tf.random.stateless_uniform(shape, seed=tf.stack([s, step]), minval=1e-7,
                                              maxval=1.0),
        seeds, fn_output_signature=tf.float32)


def row_normal(seeds, step, shape):
    """As ``row_uniform``, standard normal."""
    step = tf.cast(step, seeds.dtype)
    return tf.map_fn(lambda s: tf.random.stateless_normal(shape, seed=tf.stack([s, step])),
                     seeds, fn_output_signature=tf.float32)


def gumbel(u):
    return -tf.math.log(-tf.math.log(u))


def guide(logits, guidance_scale):
    """(2B, ...) [conditional; negative] -> (B, ...) guided."""
    conditional, negative = tf.split(logits, 2, axis=0)
    return negative + guidance_scale * (conditional - negative)


def maskgit_decode(backbone, token_ids, padding_mask, negative_ids, negative_mask, seeds,
                   guidance_scale, num_steps, temperature=1.0, randomness=4.5):
    """Confidence-ordered parallel decoding (MaskGIT): codes (B, N) int32.

    Start with every position masked. At step t of ``num_steps``: predict all positions
    (guided), sample a code at every masked one (Gumbel-max at ``temperature``), then keep the
    most confident so that ``floor(N cos(pi/2 (t+1)/T))`` stay masked (at least one new
    position per step; none after the last). Confidence is the sampled code's log-probability
    plus Gumbel noise scaled by ``randomness * (1 - (t+1)/T)`` (MaskGIT's annealed choice
    noise), so early choices vary between seeds and late ones are greedy. Known positions are
    never re-masked.
    """
    num_tokens, mask_id = backbone.num_image_tokens, backbone.mask_id
    batch = tf.shape(token_ids)[0]
    tokens = tf.fill([batch, num_tokens], tf.constant(mask_id, tf.int32))
    both_ids = tf.concat([token_ids, negative_ids], 0)                        # (2B, L)
    both_mask = tf.concat([padding_mask, negative_mask], 0)
    for step in range(num_steps):
        logits = backbone({"token_ids": both_ids, "padding_mask": both_mask,
                           "image_tokens": tf.concat([tokens, tokens], 0)}, training=False)
        logits = guide(tf.cast(logits, tf.float32), guidance_scale) / temperature   # (B, N, K)
        noise = row_uniform(seeds, 2 * step, [num_tokens, backbone.num_codes])
        sampled = tf.argmax(logits + gumbel(noise), axis=-1, output_type=tf.int32)   # (B, N)
        log_probs = tf.nn.log_softmax(logits, axis=-1)
        confidence = tf.gather(log_probs, sampled, batch_dims=2)                    # (B, N)
        unknown = tf.equal(tokens, mask_id)
        sampled = tf.where(unknown, sampled, tokens)
        progress = (step + 1) / num_steps
        keep_masked = int(math.floor(num_tokens * math.cos(math.pi / 2 * progress)))
        # at least one newly revealed position per step
        n_unknown = tf.reduce_sum(tf.cast(unknown, tf.int32), axis=1, keepdims=True)
        n_masked = tf.minimum(keep_masked, tf.maximum(n_unknown - 1, 0))           # (B, 1)
        choice = gumbel(row_uniform(seeds, 2 * step + 1, [num_tokens]))
        confidence = confidence + randomness * (1.0 - progress) * choice
        confidence = tf.where(unknown, confidence, tf.float32.max)
        rank = tf.argsort(tf.argsort(confidence, axis=1, stable=True), axis=1)     # 0 = least
        tokens = tf.where(rank < n_masked, mask_id, sampled)
    return tokens


def ddim_times(num_steps):
    """Diffusion times of the DDIM steps, 1 -> 0 (``num_steps`` + 1 values)."""
    return [1.0 - i / num_steps for i in range(num_steps + 1)]


def ddim_decode(network, rates, token_ids, padding_mask, negative_ids, negative_mask, seeds,
                guidance_scale, num_steps, image_size):
    """Deterministic DDIM (Song et al. 2021, eta = 0) from pure noise: images (B, S, S, 3) in
    the network's normalised space. ``rates(t) -> (noise_rate, signal_rate)``; the network
    predicts the noise from (noisy images, noise variance, caption)."""
    noisy = row_normal(seeds, 0, [image_size, image_size, 3])                 # (B, S, S, 3)
    both_ids = tf.concat([token_ids, negative_ids], 0)
    both_mask = tf.concat([padding_mask, negative_mask], 0)
    times = ddim_times(num_steps)
    images = noisy
    for t, t_next in zip(times[:-1], times[1:]):
        noise_rate, signal_rate = rates(tf.constant(t, tf.float32))
        batch2 = tf.shape(both_ids)[0]
        variance = tf.fill([batch2, 1, 1, 1], noise_rate**2)
        predicted = network({"noisy_images": tf.concat([noisy, noisy], 0),
                             "noise_variances": variance, "token_ids": both_ids,
                             "padding_mask": both_mask}, training=False)
        predicted = guide(tf.cast(predicted, tf.float32), guidance_scale)    # noise (B, S, S, 3)
        images = (noisy - noise_rate * predicted) / signal_rate
        next_noise, next_signal = rates(tf.constant(t_next, tf.float32))
        noisy = next_signal * images + next_noise * predicted
    return images
