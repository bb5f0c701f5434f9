"""``vit-tf t2i train``: captioned images -> a text-to-image preset, with ``model.fit`` on
``tf.data`` for every stage.

    read_captions (any reader; held-out pairs left out) -> WordPiece on the captions
      -> TextToImagePreprocessor -> images decoded once (uint8 in memory)
    maskgit:   VQVAE.fit (images)  ->  codes of every image  ->  MaskGITTextToImage.fit
               (masked_examples: cosine-schedule masks, caption dropout)
    diffusion: DiffusionTextToImage.fit (diffusion_examples: noise levels, caption dropout)
    -> RUN/ (a preset: metadata.json, task.json, task.weights.h5, preprocessor.json, assets/)
       RUN/t2i_config.json, RUN/train_summary.json (times, steps, losses, data counts),
       RUN/logs/{tokenizer,generator}/ (TensorBoard, ``vit_tf.t2i.callbacks``)

Each stage trains for at most ``steps`` steps (warmup + cosine schedule); with ``max_seconds``
it measures its first steps and sizes itself to the budget (``StepBudget``: the cosine ends
where the time does), and the summary records the measurement. Seeds fix data order, masks
and noise.
"""

import json
import os
import time

import keras
import numpy as np
import tensorflow as tf

from vit_tf.config import save_config
from vit_tf.data.pipeline import without_autotune_thread
from vit_tf.data.sources.validation import DataValidationError, Problem, ValidationReport
from vit_tf.data.tokenizer import train_tokenizer
from vit_tf.t2i.callbacks import CodebookUsage, SampleGrid, SizedCosine, StepBudget
from vit_tf.t2i.captions import read_captions
from vit_tf.t2i.config import check
from vit_tf.t2i.preprocessor import TextToImagePreprocessor


class Prepared:
    """Everything the stages train on: the preprocessor, the distinct images (uint8), and per
    caption its token ids, padding mask and image index."""

    def __init__(self, preprocessor, images, image_index, token_ids, padding_mask, captions):
        self.preprocessor, self.images, self.image_index = preprocessor, images, image_index
        self.token_ids, self.padding_mask, self.captions = token_ids, padding_mask, captions


def load_images(paths, image_size, batch_size=256):
    """Distinct image files -> (n, S, S, 3) uint8, through the project's image converter."""
    from vit_tf.data.image_converter import convert_images

    ds = tf.data.Dataset.from_tensor_slices(list(paths)).map(
        lambda p: tf.cast(tf.round(convert_images(p, image_size, "path")), tf.uint8),
        num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return np.concatenate([b.numpy() for b in ds.batch(batch_size)])


def prepare(config, data, image_root, data_format="llava", log=print, **reader_args):
    """Read, tokenize and decode the training data (see the module docstring)."""
    captions = read_captions(data, image_root, data_format, categories=config.data.categories,
                             hold_out=config.data.hold_out, skip_invalid=config.data.skip_invalid,
                             **reader_args)
    log(captions.summary())
    texts = [p.caption for p in captions.pairs]
    tokenizer = train_tokenizer(texts, config.data.vocabulary_size)
    pre = TextToImagePreprocessor(tokenizer, config.data.image_size, config.data.max_text_length)
    lengths = pre.lengths(texts)
    too_long = [Problem(str(data), p.record_id, "caption", f"{n} tokens, more than "
                        f"data.max_text_length={config.data.max_text_length}", "caption too long")
                for p, n in zip(captions.pairs, lengths) if n > config.data.max_text_length]
    if too_long:
        if not config.data.skip_invalid:
            raise DataValidationError(ValidationReport(too_long, len(texts), len(texts) - len(too_long)))
        log(f"skipped {len(too_long)} captions longer than {config.data.max_text_length} tokens")
    pairs = [p for p, n in zip(captions.pairs, lengths) if n <= config.data.max_text_length]
    paths = list(dict.fromkeys(p.image_path for p in pairs))
    index = {path: i for i, path in enumerate(paths)}
    start = time.perf_counter()
    images = load_images(paths, config.data.image_size)
    log(f"decoded {len(paths)} images in {time.perf_counter() - start:.0f} s")
    token_ids, padding_mask = pre.tokenize([p.caption for p in pairs])
    return Prepared(pre, images, np.array([index[p.image_path] for p in pairs]),
                    token_ids.numpy(), padding_mask.numpy(), captions)


def _schedule(learning_rate, warmup_steps, steps):
    return SizedCosine(learning_rate, warmup_steps, steps)


def _fit(model, ds, schedule, steps, every, max_seconds, callbacks, log_dir, log, stage):
    """``model.fit`` for at most ``steps`` steps in epochs of ``every`` steps, sized to
    ``max_seconds`` after its first steps (``StepBudget``); returns a summary."""
    every = min(every or steps, steps)
    budget = StepBudget(schedule, steps, max_seconds)
    board = keras.callbacks.TensorBoard(log_dir, update_freq="epoch", write_graph=False)
    start = time.perf_counter()
    history = model.fit(without_autotune_thread(ds), epochs=-(-steps // every),
                        steps_per_epoch=every, verbose=0,
                        callbacks=[budget, *callbacks, board, keras.callbacks.LambdaCallback(
                            on_epoch_end=lambda e, logs: log(
                                f"{stage} step {int(model.optimizer.iterations.numpy())}: "
                                + ", ".join(f"{k} {v:.4f}" for k, v in logs.items())))])
    seconds = time.perf_counter() - start
    if budget.plan:
        log(f"{stage}: {budget.plan['measured_seconds_per_step'] * 1000:.0f} ms/step measured "
            f"after {budget.plan['after_steps']} steps -> {budget.plan['total_steps']} steps "
            f"in {max_seconds:.0f} s")
    return {"steps": int(model.optimizer.iterations.numpy()), "max_steps": steps,
            "max_seconds": max_seconds, "plan": budget.plan, "seconds": round(seconds, 1),
            "history": {k: [float(x) for x in v] for k, v in history.history.items()}}


def train_tokenizer_stage(config, prep, out, log):
    from vit_tf.t2i.vqvae import VQVAE

    c = config.vq
    vq = VQVAE(config.data.image_size, c.patch_size, c.width, c.code_dim, c.num_codes,
               c.num_res_blocks, c.decay, c.commitment, c.dead_threshold, seed=config.seed,
               decoder=c.decoder, restart=c.restart)
    if c.weights:
        if not os.path.exists(c.weights):
            raise FileNotFoundError(f"vq.weights: {c.weights} does not exist")
        size = config.data.image_size
        vq(np.zeros((1, size, size, 3), "float32"))          # builds the model before loading
        vq.load_weights(c.weights)
        log(f"tokenizer: loaded {c.weights}")
        if c.steps == 0:
            usage, perplexity = vq.quantizer.codebook_usage()
            return vq, {"steps": 0, "weights": c.weights, "codebook_usage": usage,
                        "codebook_perplexity": perplexity}
    elif c.steps < 1:
        raise ValueError("vq.steps=0 needs vq.weights (a trained tokenizer)")
    schedule = _schedule(c.learning_rate, 50, c.steps)
    vq.compile(optimizer=keras.optimizers.Adam(schedule),
               loss="mse", jit_compile=config.jit_compile,
               steps_per_execution=config.steps_per_execution)
    images = prep.images
    ds = (tf.data.Dataset.from_tensor_slices(images).shuffle(len(images), seed=config.seed)
          .repeat().batch(c.batch_size, drop_remainder=True)
          .map(lambda x: (tf.cast(x, tf.float32), tf.cast(x, tf.float32) / 127.5 - 1.0))
          .prefetch(tf.data.AUTOTUNE))
    log_dir = os.path.join(out, "logs", "tokenizer")
    summary = _fit(vq, ds, schedule, c.steps, config.log_every_steps, c.max_seconds,
                   [CodebookUsage(log_dir, images)], log_dir, log, "tokenizer")
    summary["codebook_usage"], summary["codebook_perplexity"] = vq.quantizer.codebook_usage()
    return vq, summary


def encode_all(vq, images, batch_size=512):
    fn = tf.function(vq.encode, jit_compile=True, reduce_retracing=True)
    codes = [fn(tf.cast(images[i:i + batch_size], tf.float32)).numpy()
             for i in range(0, len(images), batch_size)]
    return np.concatenate(codes).reshape(len(images), -1)


def _text_dataset(prep, targets, batch_size, seed):
    ds = tf.data.Dataset.from_tensor_slices(
        ({"token_ids": prep.token_ids, "padding_mask": prep.padding_mask}, targets))
    return ds.shuffle(len(prep.token_ids), seed=seed).repeat()


def train_maskgit_stage(config, prep, vq, out, log):
    from vit_tf.t2i.generator import MaskGITTextToImage
    from vit_tf.t2i.maskgit import MaskGITBackbone, masked_examples

    c = config.maskgit
    start = time.perf_counter()
    codes = encode_all(vq, prep.images)                                       # (images, N)
    log(f"encoded {len(codes)} images to {codes.shape[1]} codes each in "
        f"{time.perf_counter() - start:.0f} s")
    backbone = MaskGITBackbone(prep.preprocessor.vocabulary_size, config.data.max_text_length,
                               vq.num_codes, vq.num_tokens, c.hidden_dim, c.num_layers,
                               c.num_heads, c.intermediate_dim, c.dropout,
                               group_size=c.group_size, name="backbone")
    task = MaskGITTextToImage(backbone, vq, prep.preprocessor, c.num_steps, c.guidance_scale,
                              c.temperature, c.randomness)
    ds = masked_examples(_text_dataset(prep, codes[prep.image_index], c.batch_size, config.seed),
                         vq.num_tokens, backbone.mask_id, c.caption_dropout, config.seed)
    return task, _fit_generator(task, ds, c, config, out, log)


def train_diffusion_stage(config, prep, out, log):
    from vit_tf.t2i.diffusion import DiffusionTextToImage, DiffusionUNet, diffusion_examples

    c = config.diffusion
    network = DiffusionUNet(config.data.image_size, prep.preprocessor.vocabulary_size,
                            config.data.max_text_length, c.widths, c.block_depth, c.text_dim,
                            c.text_layers, c.num_heads, c.attention_resolution,
                            patch_size=c.patch_size, name="network")
    task = DiffusionTextToImage(network, prep.preprocessor, c.num_steps, c.guidance_scale)
    images = prep.images[prep.image_index]
    ds = diffusion_examples(_text_dataset(prep, images, c.batch_size, config.seed),
                            c.caption_dropout, config.seed)
    return task, _fit_generator(task, ds, c, config, out, log)


def _fit_generator(task, examples, c, config, out, log):
    """Compile a generator task with its stage's schedule (``c``: MaskGITConfig or
    DiffusionConfig) and fit it on the unbatched ``examples``; -> the stage's summary."""
    schedule = _schedule(c.learning_rate, c.warmup_steps, c.steps)
    task.compile(learning_rate=schedule, weight_decay=c.weight_decay,
                 jit_compile=config.jit_compile, steps_per_execution=config.steps_per_execution)
    ds = examples.batch(c.batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)
    log_dir = os.path.join(out, "logs", "generator")
    return _fit(task, ds, schedule, c.steps, config.log_every_steps, c.max_seconds,
                [SampleGrid(task, log_dir, config.log_prompts.split("|"))], log_dir, log,
                "generator")


def train_t2i(config, data, image_root, out, data_format="llava", log=print, **reader_args):
    """Train ``config.generator`` on captioned ``data``; write the preset run folder ``out``."""
    check(config)
    if os.path.exists(os.path.join(out, "metadata.json")):
        raise FileExistsError(f"{out} already holds a trained model; choose another --out")
    os.makedirs(out, exist_ok=True)
    save_config(config, os.path.join(out, "t2i_config.json"))
    keras.utils.set_random_seed(config.seed)
    start = time.perf_counter()
    prep = prepare(config, data, image_root, data_format, log, **reader_args)
    summary = {"generator": config.generator, "data": {
        "captions": len(prep.token_ids), "images": len(prep.images),
        "records": prep.captions.n_records, "not_captions": prep.captions.not_captions,
        "held_out_records": prep.captions.held_out, "hold_out": config.data.hold_out,
        "skipped": prep.captions.skipped}, "prepare_seconds": round(time.perf_counter() - start, 1)}
    if config.generator == "maskgit":
        vq, summary["tokenizer"] = train_tokenizer_stage(config, prep, out, log)
        task, summary["generator_stage"] = train_maskgit_stage(config, prep, vq, out, log)
    else:
        task, summary["generator_stage"] = train_diffusion_stage(config, prep, out, log)
    summary["total_seconds"] = round(time.perf_counter() - start, 1)
    summary["parameters"] = int(sum(np.prod(v.shape) for v in task.weights))
    task.save_to_preset(out, extra_metadata={"generator": config.generator,
                                             "hold_out": config.data.hold_out})
    with open(os.path.join(out, "train_summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
    return task, summary
