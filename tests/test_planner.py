"""``vit-tf plan``: FLOPs counted from graph ops, parameters per part, the calibrated estimates."""

import json

import pytest
import tensorflow as tf

from tests.helpers import TINY_OVERRIDES, tiny_config
from vit_tf.cli import main
from vit_tf.models.factory import build_model
from vit_tf.models.vlm import count_params
from vit_tf.planning.planner import _fit_line, count_parts, graph_costs, machine_key, op_flops
from vit_tf.training.optim import make_loss


def _flops_of(fn, *specs):
    graph = tf.function(fn).get_concrete_function(*specs).graph
    return sum(op_flops(op) for op in graph.get_operations())


def test_op_flops_count_two_per_multiply_add():
    spec = tf.TensorSpec
    assert _flops_of(lambda a, b: tf.matmul(a, b), spec((4, 3)), spec((3, 5))) == 2 * 4 * 3 * 5
    assert _flops_of(lambda a, b: tf.matmul(a, b, transpose_a=True),
                     spec((3, 4)), spec((3, 5))) == 2 * 4 * 3 * 5
    assert _flops_of(lambda a, b: tf.einsum("abc,cd->abd", a, b),
                     spec((2, 3, 4)), spec((4, 5))) == 2 * 2 * 3 * 5 * 4
    assert _flops_of(lambda a, b: tf.matmul(a, b), spec((2, 6, 3)), spec((2, 3, 5))) == 2 * 2 * 6 * 5 * 3
    conv = _flops_of(lambda x, k: tf.nn.conv2d(x, k, 1, "SAME"), spec((1, 8, 8, 3)), spec((3, 3, 3, 4)))
    assert conv == 2 * 8 * 8 * 4 * 3 * 3 * 3


def test_training_graph_costs_about_three_forward_passes_and_parts_add_up():
    config = tiny_config()
    model = build_model(config, 100)
    forward, total, activations = graph_costs(model, make_loss(), 2, 12)
    # backward = 2 x forward for each matmul (dx and dW), less the first layer's unneeded dx
    assert 2.5 * forward < total <= 3.0 * forward
    _, total_4, activations_4 = graph_costs(model, make_loss(), 4, 12)
    assert total_4 == pytest.approx(2 * total, rel=0.02)              # linear in the batch
    # activations grow with the batch; tensors without a batch axis (position tables) do not
    assert 1.8 * activations < activations_4 <= 2 * activations
    parts = count_parts(model)
    assert sum(n["trainable"] + n["frozen"] for n in parts.values()) == count_params(model)


def test_fit_line_recovers_overhead_and_rate():
    overhead, rate, warning = _fit_line([1e9, 3e9], [0.1 + 1e9 / 5e9, 0.1 + 3e9 / 5e9])
    assert overhead == pytest.approx(0.1) and rate == pytest.approx(5e9) and warning is None


def test_a_calibration_where_no_line_fits_says_so_in_every_plan():
    """The larger model measured faster (a busy machine): the planner may not swap to another
    model silently; the calibration keeps the warning and the plan prints it."""
    from vit_tf.planning.planner import Plan, calibrate, format_plan

    class FakePlan:
        def __init__(self, flops):
            self.flops_per_step, self.state_bytes = flops, 0.0
            self.activation_bytes_per_example, self.batch_size = 0.0, 1

    plans = iter([FakePlan(1e9), FakePlan(3e9)])
    times = iter([0.9, 0.5])
    logs = []
    import vit_tf.planning.planner as planner

    real = planner.make_plan
    planner.make_plan = lambda cfg, text_length=None: next(plans)
    try:
        calibration = calibrate([None, None], lambda cfg, plan: dict(
            wall=(t := next(times)), cpu=2 * t, peak_bytes=0.0), log=logs.append)
    finally:
        planner.make_plan = real
    assert len(calibration["warnings"]) == 2
    assert calibration["wall_overhead"] == 0.0 and calibration["wall_flops"] == pytest.approx(
        3e9 / 0.9)
    assert "did not get slower with more FLOPs (0.9 s, 0.5 s)" in calibration["warnings"][0]
    assert any("warning: wall-clock step time" in m for m in logs)
    text = format_plan(Plan(1, 8, {}, 1e9, 5e8, calibration=calibration, step_seconds=0.3))
    assert text.count("warning: ") == 2 and "vit-tf plan --calibrate" in text


def _sets():
    return [a for item in TINY_OVERRIDES for a in ("--set", item)]


def test_plan_prints_parts_flops_memory_and_calibrated_estimates(tmp_path, monkeypatch, capsys):
    cache = tmp_path / "calibration.json"
    cache.write_text(json.dumps({machine_key(False): {
        "wall_overhead": 0.01, "wall_flops": 1e9, "cpu_overhead": 0.02, "cpu_flops": 5e8,
        "runtime_bytes": 100 * 2**20, "points": []}}))
    monkeypatch.setenv("VIT_TF_PLAN_CACHE", str(cache))
    assert main(["plan", *_sets(), "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert set(plan["parameters"]) == {"image_encoder", "projector", "decoder"}
    assert plan["flops_per_step"] > 0 and plan["activation_bytes_per_example"] > 0
    assert plan["step_seconds"] == pytest.approx(0.01 + plan["flops_per_step"] / 1e9)
    assert plan["peak_bytes"] == pytest.approx(
        plan["state_bytes"] + plan["activation_bytes_per_example"] * 4 + 100 * 2**20)
    assert main(["plan", *_sets()]) == 0
    out = capsys.readouterr().out
    for text in ("image_encoder", "FLOPs per step", "activation memory per example",
                 "estimated step time", "estimated peak memory"):
        assert text in out, text


def test_plan_rejects_an_unknown_config_key(capsys):
    assert main(["plan", "--no-calibration", "--set", "model.decoder.widht=3"]) == 2
    assert "widht" in capsys.readouterr().err

