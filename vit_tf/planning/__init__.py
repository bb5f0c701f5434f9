"""Planning a run before training (``vit-tf plan``): parameters, FLOPs, activation memory, and
step time / peak memory from a per-machine calibration.

    planner.py   the estimates (``make_plan``, ``format_plan``) and the calibration
                 (``calibrate``, ``calibrated``: cached per machine)
    measure.py   one config's measured training step in a fresh process
                 (``python -m vit_tf.planning.measure``), used by the calibration and
                 ``benchmarks/plan_check.py``
"""
