"""Ablation: fusion {concat, cross_attention, attention_pooling} x decoder {transformer, lstm}.

Every cell uses the same shapes world (800 train / 100 test scenes, seed 0), the same image
encoder (conv-stem ViT, patch 16, 16 image tokens, width 64), the same MLP projector, decoder
width 64 with 2 layers, and the same training budget (epochs, batch 32, learning-rate schedule,
seed). Only ``model.fusion.name`` and ``model.decoder.name`` change.

Command (writes runs/ablation/results.{json,md}; one cell takes ~4-5 min of training plus
~2-5 min of evaluation on 2 idle CPU cores, far more on a shared machine):

    python -m vit_tf.experiments.ablation_fusion_decoder --out runs/ablation [--epochs 4]

Cells can run in separate processes (``--decoders lstm`` / ``--fusions ...`` with another
``--out``); ``merge_tables(a/results.json, b/results.json)`` joins their tables.

One cell on its own, on any data:

    vit-tf train --experiment ablation_fusion_decoder --set model.fusion.name=attention_pooling \\
        --set model.decoder.name=lstm --data DATA.json --image-root DIR --out runs/NAME

The measured table is in vit_tf/experiments/README.md ("Fusion x decoder ablation").
"""

import argparse
import json
import os
import time

import numpy as np

from vit_tf.config import ExperimentConfig

FUSIONS = ("concat", "cross_attention", "attention_pooling")
DECODERS = ("transformer", "lstm")
EPOCHS = 4


def get_config(fusion="concat", decoder="transformer", epochs=EPOCHS):
    config = ExperimentConfig(name=f"ablation_{fusion}_{decoder}")
    config.data.image_size = 64
    config.data.batch_size = 32
    enc = config.model.encoder
    enc.name = "vit"
    enc.patch_size = 16
    enc.conv_stem = True
    enc.hidden_dim = 64
    enc.num_layers = 2
    enc.num_heads = 4
    enc.intermediate_dim = 128
    config.model.projector.name = "mlp"
    dec = config.model.decoder
    dec.name = decoder
    dec.hidden_dim = 64
    dec.num_layers = 2
    dec.num_heads = 4
    dec.intermediate_dim = 256
    config.model.fusion.name = fusion
    config.model.fusion.num_heads = 4
    config.train.epochs = epochs
    config.train.learning_rate = 1e-3
    config.train.num_samples_to_log = 0
    # Without XLA: same step time for these small models on CPU, but no per-bucket compile
    # (~1 min per text-length bucket on 2 busy cores), which would dominate a short run.
    config.train.jit_compile = False
    return config


def _row(fusion, decoder, summary, metrics):
    cats = metrics["categories"]
    exact = {name: row["exact_match"] for name, row in cats.items()}
    return {
        "fusion": fusion, "decoder": decoder,
        "exact_match": exact,
        "overall_short": metrics["overall"]["exact_match"],
        "caption_bleu4": cats.get("caption", {}).get("bleu4"),
        "caption_cider_d": cats.get("caption", {}).get("cider_d"),
        "parameters": summary["parameters"]["total"],
        "train_seconds": summary["seconds"],
        "final_loss": summary["history"]["loss"][-1],
        # Less sensitive to a shared machine than the total (the first epoch also traces).
        "median_epoch_seconds": float(np.median(summary["history"]["epoch_seconds"])),
    }


def format_markdown(rows):
    cats = ["attribute", "position", "existence", "counting", "relation", "conversation"]
    head = ("| fusion | decoder | " + " | ".join(cats) + " | overall | caption BLEU-4 | "
            "caption CIDEr-D | params | train s | s/epoch (median) | final loss |")
    lines = [head, "|" + "---|" * (len(cats) + 9)]
    for r in rows:
        ex = [f"{100 * r['exact_match'].get(c, float('nan')):.1f}" for c in cats]
        lines.append(
            f"| {r['fusion']} | {r['decoder']} | " + " | ".join(ex)
            + f" | {100 * r['overall_short']:.1f} | {r['caption_bleu4']:.3f} | "
            f"{r['caption_cider_d']:.2f} | {r['parameters']:,} | {r['train_seconds']:.0f} | "
            f"{r.get('median_epoch_seconds', float('nan')):.0f} | {r['final_loss']:.3f} |"
        )
    return "\n".join(lines)


def merge_tables(*results_paths):
    """One markdown table from several ``results.json`` files (cells run in separate processes)."""
    rows = []
    for path in results_paths:
        for row in json.load(open(path)):
            if "median_epoch_seconds" not in row:  # rows written before the column existed
                run = os.path.join(os.path.dirname(path), f"{row['fusion']}_{row['decoder']}")
                with open(os.path.join(run, "train_summary.json")) as f:
                    seconds = json.load(f)["history"]["epoch_seconds"]
                row["median_epoch_seconds"] = float(np.median(seconds))
            rows.append(row)
    return format_markdown(rows)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="runs/ablation")
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    parser.add_argument("--train", type=int, default=800, help="training scenes")
    parser.add_argument("--test", type=int, default=100, help="test scenes")
    parser.add_argument("--fusions", default=",".join(FUSIONS))
    parser.add_argument("--decoders", default=",".join(DECODERS))
    args = parser.parse_args(argv)

    from vit_tf.data.shapes import write_shapes_world
    from vit_tf.eval.evaluate import evaluate_run
    from vit_tf.training.train import train

    data = os.path.join(args.out, "shapes")
    if not os.path.exists(os.path.join(data, "test.json")):
        write_shapes_world(data, args.train, args.test, seed=0)
    results_path = os.path.join(args.out, "results.json")
    rows = json.load(open(results_path)) if os.path.exists(results_path) else []
    done = {(r["fusion"], r["decoder"]) for r in rows}
    for decoder in args.decoders.split(","):
        for fusion in args.fusions.split(","):
            if (fusion, decoder) in done:
                continue
            run = os.path.join(args.out, f"{fusion}_{decoder}")
            start = time.perf_counter()
            summary = train(get_config(fusion, decoder, args.epochs),
                            os.path.join(data, "train.json"), data, run)
            metrics, _ = evaluate_run(run, benchmark="shapes", image_root=data,
                                      out=os.path.join(run, "eval"))
            rows.append(_row(fusion, decoder, summary, metrics))
            print(f"{fusion} x {decoder}: {time.perf_counter() - start:.0f} s", flush=True)
            with open(results_path, "w") as f:
                json.dump(rows, f, indent=2)
    table = format_markdown(rows)
    with open(os.path.join(args.out, "results.md"), "w") as f:
        f.write(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
