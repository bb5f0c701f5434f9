"""``vit-tf t2i eval``: the GenEval mirror for a model or a baseline, in one call.

    suites (``geneval.prompt_suites``: per task, plus held-out compositions)
      -> images: a trained model (``--model``), ``oracle`` renders or ``retrieval`` (nearest
         training caption's image, ``--train-data``)
      -> parser scores per image, per task, overall, held out     (results.jsonl, metrics.json)
      -> diversity across seeds; sampling time
      -> optional: the VLM judge (``--judge VLM_RUN``): its verdicts vs the parser's, VQAScore;
         best-of-N reranking by the judge's log-probability, scored by the parser (apart)
    OUT/report.txt is the table; OUT/samples.png a grid of the first prompts of every task.

``seen``: with the training captions at hand, the fraction of each task's prompts that are
exactly a training caption (the rest are new to the model).
"""

import json
import os
import time

import numpy as np

from vit_tf.t2i.geneval import (
    HELD_OUT_TASKS,
    TASKS,
    diversity,
    oracle_render,
    prompt_suites,
    score_images,
    summarize,
)


def _flat(suites):
    return [spec for task in suites for spec in suites[task]]


def _grid(specs, images, per_task=4):
    from vit_tf.t2i.callbacks import image_grid

    chosen, seen = [], {}
    for spec, image in zip(specs, images):
        if seen.get(spec.task, 0) < per_task:
            seen[spec.task] = seen.get(spec.task, 0) + 1
            chosen.append(image)
    return image_grid(np.stack(chosen), per_task)


def make_generate(source, train_pairs=None, image_size=64, num_steps=None, guidance_scale=None):
    """(name, generate(prompts, seed) -> uint8 images) for a model path or a baseline name."""
    if source == "oracle":
        return "oracle", None
    if source == "retrieval":
        from vit_tf.t2i.retrieval import RetrievalBaseline

        if not train_pairs:
            raise ValueError("the retrieval baseline needs the training captions (--train-data)")
        baseline = RetrievalBaseline([p.caption for p in train_pairs],
                                     [p.image_path for p in train_pairs], image_size)
        return "retrieval", lambda prompts, seed: baseline.generate(prompts)
    from vit_tf.t2i.task import load_text_to_image

    task = load_text_to_image(source)
    return type(task).__name__, lambda prompts, seed: task.generate(
        prompts, num_steps=num_steps, guidance_scale=guidance_scale, seed=seed)


def evaluate_t2i(source, out, per_task=50, seed=0, hold_out=(), train_pairs=None,
                 judge_path=None, best_of=0, diversity_prompts=16, diversity_seeds=4,
                 num_steps=None, guidance_scale=None, log=print):
    """Score ``source`` (a model folder / .keras, "oracle" or "retrieval"); returns metrics."""
    os.makedirs(out, exist_ok=True)
    suites = prompt_suites(per_task, seed, hold_out)
    specs = _flat(suites)
    name, generate = make_generate(source, train_pairs, num_steps=num_steps,
                                   guidance_scale=guidance_scale)
    start = time.perf_counter()
    if generate is None:
        images = np.stack([oracle_render(s, seed=i) for i, s in enumerate(specs)])
    else:
        images = generate([s.prompt for s in specs], 1000 * seed)
    seconds = time.perf_counter() - start
    results = score_images(specs, images)
    metrics = {"source": str(source), "generator": name, "per_task": per_task, "seed": seed,
               "hold_out": [list(p) for p in hold_out], "images": len(specs),
               "generation_seconds": round(seconds, 1), "scores": summarize(results),
               "num_steps": num_steps, "guidance_scale": guidance_scale}
    if train_pairs:
        captions = {p.caption for p in train_pairs}
        metrics["seen"] = {t: float(np.mean([s.prompt in captions for s in suites[t]]))
                           for t in suites}
    if generate is not None and name != "retrieval" and diversity_prompts:
        picks = specs[::max(1, len(specs) // diversity_prompts)][:diversity_prompts]
        rows = [generate([s.prompt] * diversity_seeds, 77 + 1000 * k) for k, s in enumerate(picks)]
        pixel, layouts = zip(*(diversity(r) for r in rows))
        metrics["diversity"] = {"prompts": len(picks), "seeds": diversity_seeds,
                                "pixel_difference": float(np.mean(pixel)),
                                "distinct_layouts": float(np.mean(layouts))}
    if judge_path:
        metrics["judge"] = _judge(judge_path, specs, images, results, generate, best_of, seed,
                                  log)
    with open(os.path.join(out, "results.jsonl"), "w") as f:
        for r in results:
            f.write(json.dumps(r) + "\n")
    with open(os.path.join(out, "metrics.json"), "w") as f:
        json.dump(metrics, f, indent=2)
    from PIL import Image

    Image.fromarray(_grid(specs, images)).save(os.path.join(out, "samples.png"))
    report = format_table({name: metrics})
    with open(os.path.join(out, "report.txt"), "w") as f:
        f.write(report + "\n")
    log(report)
    return metrics


def _judge(judge_path, specs, images, results, generate, best_of, seed, log):
    from vit_tf.runs import load_task
    from vit_tf.t2i.judge import VLMJudge, agreement

    judge = VLMJudge(load_task(judge_path))
    rows = judge.judge(specs, images)
    out = {"model": str(judge_path), **agreement(rows)}
    log(f"judge: agrees with the parser on {out['agreement']:.1%} of {out['images']} images "
        f"(answers {out['question_agreement']:.1%}); VQAScore {out['vqascore']:.3f}")
    if best_of and generate is not None:
        candidates = [images] + [generate([s.prompt for s in specs], 1000 * seed + 500 * k)
                                 for k in range(1, best_of)]
        scores = np.stack([[r["log_p"] for r in judge.judge(specs, c)] if k else
                           [r["log_p"] for r in rows] for k, c in enumerate(candidates)])
        best = scores.argmax(0)                                         # (images,)
        chosen = np.stack([candidates[b][i] for i, b in enumerate(best)])
        out["best_of"] = {"n": best_of, "scores": summarize(score_images(specs, chosen))}
    return out


def format_table(by_source):
    """Rows: tasks, overall, held out; one column per source (its ``scores``)."""
    names = list(by_source)
    rows = [*TASKS, "overall", *HELD_OUT_TASKS, "held_out"]
    width = max(12, *(len(n) for n in names))
    lines = ["task".ljust(18) + "".join(n.rjust(width + 2) for n in names)]
    for row in rows:
        values = [by_source[n]["scores"].get(row) for n in names]
        if all(v is None for v in values):
            continue
        lines.append(row.ljust(18) + "".join(
            ("-" if v is None else f"{v:.3f}").rjust(width + 2) for v in values))
    return "\n".join(lines)


def tokenizer_gate(vq, images, batch_size=256):
    """The image tokenizer's gate: the fraction of ``images`` (uint8, shapes world) whose
    reconstruction ``decode(encode(x))`` parses back as the same scene (colour, shape, size
    and cell of every object, nothing more), and the worst cases' indices."""
    import tensorflow as tf

    from vit_tf.t2i.parser import parse_image, scene_key
    from vit_tf.t2i.task import to_uint8

    fn = tf.function(lambda x: vq.decode(vq.encode(x)), jit_compile=True, reduce_retracing=True)
    recon = np.concatenate([to_uint8(fn(tf.cast(images[i:i + batch_size], tf.float32)))
                            for i in range(0, len(images), batch_size)])
    equal = np.array([scene_key(parse_image(a).scene) == scene_key(parse_image(b).scene)
                      for a, b in zip(images, recon)])
    return {"images": int(len(images)), "parsed_equal": float(equal.mean()),
            "failures": [int(i) for i in np.flatnonzero(~equal)[:20]]}, recon
