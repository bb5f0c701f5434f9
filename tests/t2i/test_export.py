"""The text-to-image SavedModel: prompt strings in, PNG bytes out, in a process with only
tensorflow and tensorflow-text; its pixels are task.generate's."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from tests.t2i import tiny
from vit_tf.t2i.export import export_text_to_image

PROMPTS = ["a large red circle.", "there is 1 object. a small blue square at the top left."]
CHECK = os.path.join(os.path.dirname(__file__), "serve_png_check.py")


def test_export_serves_the_same_pixels_in_a_fresh_process(tmp_path):
    task = tiny.maskgit_task(seed=4)
    saved = str(tmp_path / "saved")
    export_text_to_image(task, saved, num_steps=1)
    with pytest.raises(FileExistsError, match="already exists"):
        export_text_to_image(task, saved)
    cwd = tmp_path / "empty"
    cwd.mkdir()
    script = shutil.copy(CHECK, cwd / "check.py")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    run = subprocess.run([sys.executable, "-I", script, saved, *PROMPTS], cwd=cwd, env=env,
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-3000:]
    line = next(l for l in run.stdout.splitlines() if l.startswith("RESULT "))
    result = json.loads(line[len("RESULT "):])
    served = np.array(result["images"], np.uint8)
    expected = task.generate(PROMPTS, seed=0, num_steps=1, jit_compile=False)
    np.testing.assert_array_equal(served[:2], expected)
    expected_full = task.generate({"prompts": PROMPTS, "negative_prompts": ["a small green triangle."]},
                                  seed=7, guidance_scale=3.0, num_steps=1, jit_compile=False)
    np.testing.assert_array_equal(served[2:], expected_full)
    assert "longer than the text context" in result["too_long"]


def test_a_preset_loads_in_a_fresh_process_that_imported_only_the_loader(tmp_path):
    task = tiny.maskgit_task(seed=4)
    task.save_to_preset(str(tmp_path / "run"))
    code = ("import sys; from vit_tf.t2i.task import load_text_to_image; "
            "t = load_text_to_image(sys.argv[1]); print('LOADED', type(t).__name__, "
            "type(t.backbone).__name__, type(t.image_tokenizer).__name__)")
    run = subprocess.run([sys.executable, "-c", code, str(tmp_path / "run")],
                         capture_output=True, text=True,
                         env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert run.returncode == 0, run.stderr[-3000:]
    assert "LOADED MaskGITTextToImage MaskGITBackbone VQVAE" in run.stdout
