"""The contrastive losses under MirroredStrategy over 2 logical CPUs: negatives (and the pair
ids that mark positives) gathered across replicas give one device's loss and gradients on the
same global batch, and so does DualEncoder.compute_loss with the pair ids each replica makes.

Runs in a fresh process (tests/training/contrastive_mirrored_check.py): logical devices must be
configured before TensorFlow starts, which it already has in the test process.
"""

import json
import os
import subprocess
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_mirrored_contrastive_losses_and_gradients_equal_one_device():
    proc = subprocess.run([sys.executable, "tests/training/contrastive_mirrored_check.py"],
                          cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT),
                          capture_output=True, text=True, timeout=600)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stderr[-3000:]
    result = json.loads(lines[0][len("RESULT "):])
    assert result["replicas"] == 2
    for loss in ("clip", "siglip"):
        (one_value, one_grads), (two_value, two_grads) = result[loss]["one"], result[loss]["two"]
        np.testing.assert_allclose(two_value, one_value, rtol=1e-5)
        for one_g, two_g in zip(one_grads, two_grads):   # image / text projections, t, b
            np.testing.assert_allclose(two_g, one_g, rtol=1e-4, atol=1e-6)
        assert np.abs(np.asarray(one_grads[0])).max() > 0    # the gradients are not trivial
    assert np.abs(result["siglip"]["one"][1][3]) > 0         # SigLIP's bias learns, CLIP has none
    assert result["clip"]["one"][1][3] == 0.0
    one, two = result["model"]
    np.testing.assert_allclose(two, one, rtol=1e-5)
