"""``vit-tf plan``: parameters, activation memory, FLOPs, step time and peak memory before training.

How each number is obtained:

* **Parameters** per part (image encoder, projector, decoder with its fusion), trainable or not,
  from the model the config builds (random weights; nothing is trained).
* **FLOPs per step** (forward + backward) are counted on the real training graph: one training
  step (loss, ``tf.GradientTape`` gradients) is traced at the planned batch shape and every
  matrix-multiply-like op in it (MatMul, BatchMatMul, Einsum, Conv2D and the convolution
  backprops) contributes 2 x multiply-adds from its static shapes. So the count follows whatever
  encoder / fusion / decoder the config picks, and includes the backward pass exactly as
  TensorFlow builds it, without per-layer formulas to keep in sync. Elementwise work (softmax,
  norms, GELU) is not counted; the step-time calibration absorbs it.
* **Activation memory per example**: the forward tensors the backward pass reads (outputs of
  forward ops consumed by ``gradient_tape/`` ops, weights excluded), divided by the batch size.
  This is what has to stay alive between forward and backward, before XLA fusion.
* **Step time**: ``overhead + FLOPs / rate``, with ``overhead`` (seconds) and ``rate`` (FLOP/s)
  fitted once per machine on two small calibration models (``calibrate``), cached in
  ``~/.cache/vit_tf/plan_calibration.json``. Given both per wall-clock second and per
  CPU-second (the latter is steadier on a shared machine).
* **Peak memory**: 16 bytes per parameter (float32 weights, gradients, Adam's two moments) +
  the activations of one batch + the TensorFlow runtime's per-step overhead measured in the
  calibration (the resident-memory growth of a training process beyond those two terms).

Example:
    >>> from vit_tf.experiments import load_experiment
    >>> print(format_plan(make_plan(load_experiment("default"))))

The calibration models are derived from a base config the caller passes (``vit-tf plan`` passes
the ``default`` experiment), so the library does not import the experiments.
"""

import json
import os
import socket
from dataclasses import asdict, dataclass, field

import numpy as np


def cache_path():
    """``$VIT_TF_PLAN_CACHE`` or ``~/.cache/vit_tf/plan_calibration.json``."""
    return os.environ.get("VIT_TF_PLAN_CACHE") or os.path.join(
        os.path.expanduser("~"), ".cache", "vit_tf", "plan_calibration.json")


@dataclass
class Plan:
    batch_size: int
    text_length: int
    parameters: dict = field(default_factory=dict)   # part -> {"trainable": n, "frozen": n}
    flops_per_step: float = 0.0                      # forward + backward, one global batch
    forward_flops: float = 0.0
    activation_bytes_per_example: float = 0.0
    state_bytes: float = 0.0                         # weights + gradients + optimizer state
    step_seconds: float = 0.0                        # wall clock, machine to itself
    step_cpu_seconds: float = 0.0
    peak_bytes: float = 0.0
    calibration: dict = field(default_factory=dict)


def _static(shape):
    return [int(d) for d in shape]


def op_flops(op):
    """FLOPs (2 per multiply-add) of one graph op, 0 for ops that are not matmul-like."""
    t = op.type
    try:
        if t == "MatMul":
            a = _static(op.inputs[0].shape)
            k = a[0] if op.get_attr("transpose_a") else a[1]
            return 2.0 * np.prod(_static(op.outputs[0].shape)) * k
        if t.startswith("BatchMatMul"):
            a = _static(op.inputs[0].shape)
            k = a[-2] if op.get_attr("adj_x") else a[-1]
            return 2.0 * np.prod(_static(op.outputs[0].shape)) * k
        if t == "Einsum":
            equation = op.get_attr("equation").decode().replace(" ", "")
            inputs, output = equation.split("->")
            sizes = {}
            for spec, tensor in zip(inputs.split(","), op.inputs):
                dims = _static(tensor.shape)
                letters = spec.replace("...", "")
                offset = len(dims) - len(letters) if "..." in spec and spec.index("...") == 0 else 0
                for i, letter in enumerate(letters):
                    sizes[letter] = dims[i + offset]
            contracted = set(inputs.replace(",", "").replace(".", "")) - set(output)
            return 2.0 * np.prod(_static(op.outputs[0].shape)) * np.prod(
                [sizes[c] for c in contracted] or [1])
        if t in ("Conv2D", "DepthwiseConv2dNative"):
            kh, kw, cin = _static(op.inputs[1].shape)[:3]
            per_output = kh * kw * (cin if t == "Conv2D" else 1)
            return 2.0 * np.prod(_static(op.outputs[0].shape)) * per_output
        if t == "Conv2DBackpropInput":      # dx: each out_backprop value x kh x kw x cin
            kh, kw, cin = _static(op.inputs[1].shape)[:3]
            return 2.0 * np.prod(_static(op.inputs[2].shape)) * kh * kw * cin
        if t == "Conv2DBackpropFilter":     # dW: the same multiply-adds as the forward conv
            kh, kw, cin = _static(op.outputs[0].shape)[:3]
            return 2.0 * np.prod(_static(op.inputs[2].shape)) * kh * kw * cin
    except (TypeError, ValueError):         # an unknown dimension: not countable
        raise ValueError(f"op {op.name} ({t}) has a shape unknown at trace time") from None
    return 0.0


_NOT_ACTIVATIONS = {"ReadVariableOp", "Const", "VarHandleOp", "Identity", "NoOp", "Shape",
                    "Placeholder"}


def _is_backward(op):
    return op.name.startswith("gradient_tape/") or "/gradient_tape/" in op.name


def graph_costs(model, loss_fn, batch_size, text_length):
    """(forward FLOPs, forward+backward FLOPs, activation bytes) of one training step."""
    import tensorflow as tf

    s = model.image_size
    specs = ({"images": tf.TensorSpec((batch_size, s, s, 3), tf.float32),
              "token_ids": tf.TensorSpec((batch_size, text_length), tf.int32),
              "padding_mask": tf.TensorSpec((batch_size, text_length), tf.bool)},
             tf.TensorSpec((batch_size, text_length), tf.int32),
             tf.TensorSpec((batch_size, text_length), tf.float32))

    @tf.function(autograph=False)
    def step(x, y, w):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True), sample_weight=w)
        return tape.gradient(loss, model.trainable_weights)

    graph = step.get_concrete_function(*specs).graph
    forward = total = activations = 0.0
    seen = set()
    for op in graph.get_operations():
        flops = op_flops(op)
        total += flops
        if _is_backward(op):
            for t in op.inputs:
                src = t.op
                if (t.name not in seen and not _is_backward(src)
                        and src.type not in _NOT_ACTIVATIONS and t.shape.is_fully_defined()):
                    seen.add(t.name)
                    activations += t.shape.num_elements() * t.dtype.size
        else:
            forward += flops
    return forward, total, activations


def count_parts(model):
    """{part: {"trainable": n, "frozen": n}} for the encoder, projector and decoder."""
    parts = {}
    for name in ("image_encoder", "projector", "decoder"):
        layer = getattr(model, name)
        parts[name] = {
            "trainable": int(sum(np.prod(w.shape) for w in layer.trainable_weights)),
            "frozen": int(sum(np.prod(w.shape) for w in layer.non_trainable_weights)),
        }
    return parts


def machine_key(jit_compile):
    import tensorflow as tf

    return f"{socket.gethostname()}|cpus={os.cpu_count()}|tf={tf.__version__}|xla={jit_compile}"


def load_calibration(jit_compile, path=None):
    path = path or cache_path()
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f).get(machine_key(jit_compile))


def save_calibration(calibration, jit_compile, path=None):
    path = path or cache_path()
    data = {}
    if os.path.exists(path):
        with open(path) as f:
            data = json.load(f)
    data[machine_key(jit_compile)] = calibration
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(data, f, indent=2)


def make_plan(config, vocabulary_size=None, text_length=None, calibration=None):
    """Plan one training step of ``config`` at (``data.batch_size``, ``text_length``).

    ``text_length`` defaults to ``data.max_text_length`` (the widest bucket: the worst case);
    ``vocabulary_size`` to ``data.vocabulary_size`` (the trained tokenizer's is at most that).
    ``calibration`` (``calibrate``): without one, times and the runtime memory are left at 0.
    """
    import keras

    from vit_tf.models.factory import build_model
    from vit_tf.training.optim import make_loss

    d = config.data
    text_length = text_length or d.max_text_length
    model = build_model(config, vocabulary_size or d.vocabulary_size)
    forward, total, activations = graph_costs(model, make_loss(), d.batch_size, text_length)
    parts = count_parts(model)
    trainable = sum(p["trainable"] for p in parts.values())
    frozen = sum(p["frozen"] for p in parts.values())
    plan = Plan(d.batch_size, text_length, parts, total, forward, activations / d.batch_size,
                state_bytes=16.0 * trainable + 4.0 * frozen)
    if calibration:
        plan.calibration = calibration
        plan.step_seconds = calibration["wall_overhead"] + total / calibration["wall_flops"]
        plan.step_cpu_seconds = calibration["cpu_overhead"] + total / calibration["cpu_flops"]
        plan.peak_bytes = plan.state_bytes + activations + calibration["runtime_bytes"]
    keras.backend.clear_session()
    return plan


def _fit_line(xs, ys, what="step time"):
    """Least-squares ``y = a + x / rate`` -> (a, rate, warning or None); a clipped at 0.

    When the slope is not positive (the larger model measured no slower: noise swamped the
    difference) no line fits; the rate through the largest point is used instead, and the
    warning says so (kept in the calibration, printed with every plan)."""
    slope, a = np.polyfit(np.asarray(xs, float), np.asarray(ys, float), 1)
    if slope <= 0:
        return 0.0, max(xs) / max(ys), (
            f"{what}: the calibration models did not get slower with more FLOPs "
            f"({', '.join(f'{y:.3g} s' for y in ys)}), so the machine was busy or the "
            "difference too small; estimated as FLOPs / rate through the largest point, with "
            "no per-step overhead. Recalibrate on an idle machine: vit-tf plan --calibrate")
    return max(float(a), 0.0), 1.0 / float(slope), None


def calibrate(configs, measure, log=print):
    """Fit step time and runtime memory on ``configs`` (measured by ``measure(cfg, plan)``
    -> {"wall", "cpu", "peak_bytes"}) -> a calibration dict (see the module docstring)."""
    rows = []
    for cfg in configs:
        plan = make_plan(cfg, text_length=CALIBRATION_TEXT_LENGTH)
        m = measure(cfg, plan)
        rows.append((plan, m))
        log(f"  calibration: {plan.flops_per_step / 1e9:.2f} GFLOP/step -> {m['wall']:.3f} s "
            f"wall, {m['cpu']:.3f} CPU-s, peak +{m['peak_bytes'] / 2**20:.0f} MiB")
    flops = [p.flops_per_step for p, _ in rows]
    wall_overhead, wall_flops, wall_warning = _fit_line(flops, [m["wall"] for _, m in rows],
                                                        "wall-clock step time")
    cpu_overhead, cpu_flops, cpu_warning = _fit_line(flops, [m["cpu"] for _, m in rows],
                                                     "CPU step time")
    warnings = [w for w in (wall_warning, cpu_warning) if w]
    for warning in warnings:
        log(f"  warning: {warning}")
    runtime = [m["peak_bytes"] - p.state_bytes - p.activation_bytes_per_example * p.batch_size
               for p, m in rows]
    return {"wall_overhead": wall_overhead, "wall_flops": wall_flops,
            "cpu_overhead": cpu_overhead, "cpu_flops": cpu_flops,
            "runtime_bytes": float(max(np.median(runtime), 0.0)),
            "points": [{"flops": p.flops_per_step, **m} for p, m in rows],
            "warnings": warnings}


CALIBRATION_TEXT_LENGTH = 64


def calibration_configs(base_config, jit_compile):
    """The two calibration models: ``base_config`` (the default experiment, as ``vit-tf plan``
    passes it) at widths 32 and 96 (measured at text length 64), XLA as the planned config.
    Neither is a config ``benchmarks/plan_check.py`` checks."""
    from vit_tf.config import apply_overrides

    configs = []
    for width in (32, 96):
        configs.append(apply_overrides(base_config, [
            f"model.encoder.hidden_dim={width}", f"model.encoder.intermediate_dim={2 * width}",
            f"model.decoder.hidden_dim={width}", f"model.decoder.intermediate_dim={4 * width}",
            f"train.jit_compile={str(jit_compile).lower()}"]))
    return configs


def calibrated(base_config, jit_compile, recalibrate=False, steps=10, log=print, path=None):
    """The cached calibration of this machine, measuring it first when missing (a few minutes,
    two fresh processes) or when ``recalibrate``.

    ``base_config``: what the calibration models are derived from (``calibration_configs``);
    pass the same one every time (``vit-tf plan`` and ``benchmarks/plan_check.py`` pass the
    ``default`` experiment): the cache is kept per machine and XLA setting, not per base.
    """
    from vit_tf.planning.measure import measure_in_subprocess

    path = path or cache_path()
    calibration = None if recalibrate else load_calibration(jit_compile, path)
    if calibration is None:
        log(f"calibrating step time and memory on this machine (once; cached in {path}) ...")
        calibration = calibrate(
            calibration_configs(base_config, jit_compile),
            lambda cfg, plan: measure_in_subprocess(cfg, plan.text_length, steps), log=log)
        save_calibration(calibration, jit_compile, path)
    return calibration


def format_plan(plan):
    mib = 2.0**20
    lines = [f"plan for one training step: batch {plan.batch_size}, text length "
             f"{plan.text_length} (the widest bucket)", "",
             f"{'part':<16}{'trainable':>14}{'frozen':>12}"]
    for part, n in plan.parameters.items():
        lines.append(f"{part:<16}{n['trainable']:>14,}{n['frozen']:>12,}")
    total_t = sum(n["trainable"] for n in plan.parameters.values())
    total_f = sum(n["frozen"] for n in plan.parameters.values())
    lines += [f"{'total':<16}{total_t:>14,}{total_f:>12,}", "",
              f"FLOPs per step (forward + backward): {plan.flops_per_step / 1e9:,.2f} G "
              f"(forward {plan.forward_flops / 1e9:,.2f} G)",
              f"activation memory per example: {plan.activation_bytes_per_example / mib:,.2f} MiB "
              f"({plan.activation_bytes_per_example * plan.batch_size / mib:,.1f} MiB per batch)",
              f"weights + gradients + Adam state: {plan.state_bytes / mib:,.1f} MiB"]
    if plan.calibration:
        c = plan.calibration
        lines += [f"estimated step time on this machine: {plan.step_seconds:.3f} s wall "
                  f"({plan.step_cpu_seconds:.3f} CPU-s; calibrated {c['wall_flops'] / 1e9:.1f} "
                  f"GFLOP/s + {c['wall_overhead'] * 1e3:.0f} ms per step)",
                  f"estimated peak memory: {plan.peak_bytes / mib:,.0f} MiB (incl. "
                  f"{c['runtime_bytes'] / mib:,.0f} MiB TensorFlow runtime per-step overhead)"]
        lines += [f"warning: {w}" for w in c.get("warnings", [])]
    else:
        lines.append("step time and peak memory: not calibrated on this machine "
                     "(run `vit-tf plan --calibrate` once)")
    return "\n".join(lines)


def to_json(plan):
    return asdict(plan)


