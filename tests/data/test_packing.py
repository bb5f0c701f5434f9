"""Packing an image's examples into one row: nothing lost, and each example computed as if alone."""

import numpy as np
import pytest

from tests.helpers import TINY_TEXTS, tiny_config, tiny_preprocessor
from vit_tf.config import ConfigError
from vit_tf.data.packing import pack_by_image
from vit_tf.data.pipeline import encode_records, make_dataset
from vit_tf.models.factory import build_model
from vit_tf.training.optim import make_loss

IMAGE_SIZE = 16


def _records(tmp_path, n_images=2, per_image=3):
    from PIL import Image

    rng = np.random.default_rng(0)
    records = []
    for image in range(n_images):
        path = tmp_path / f"{image}.png"
        Image.fromarray(rng.integers(0, 256, (IMAGE_SIZE, IMAGE_SIZE, 3), np.uint8)).save(path)
        for k in range(per_image):
            q, a = TINY_TEXTS[(2 * k + image) % 8], TINY_TEXTS[(2 * k + image + 1) % 8]
            turns = [{"from": "human", "value": f"<image>\n{q}"}, {"from": "gpt", "value": a}]
            if k == 1:   # a multi-turn example too
                turns += [{"from": "human", "value": TINY_TEXTS[8]}, {"from": "gpt", "value": "yes"}]
            records.append({"id": f"i{image}_{k}", "image_path": str(path), "conversations": turns})
    return records


def test_pack_keeps_every_trained_token_and_one_image_per_row(tmp_path):
    examples = encode_records(_records(tmp_path), tiny_preprocessor(), 32)
    packed = pack_by_image(examples, max_length=128, seed=0)
    assert len(packed) == 2                                     # one row per image
    assert packed.trained.sum() == examples.trained.sum()
    assert (packed.token_ids != 0).sum() == (examples.token_ids != 0).sum()
    for row, ids in enumerate(packed.record_ids):
        assert {i.split("_")[0] for i in ids.split("+")} == {ids[:2]}
        assert packed.image_paths[row].endswith(f"{ids[1]}.png")
    # A small limit splits an image over several rows; none exceeds it.
    small = pack_by_image(examples, max_length=int(examples.lengths.max()) + 1, seed=0)
    assert len(small) == len(examples) and (small.lengths < small.token_ids.shape[1]).all()
    with pytest.raises(ValueError, match="exceed the packed length"):
        pack_by_image(examples, max_length=int(examples.lengths.max()), seed=0)


@pytest.mark.parametrize("attention", ["causal", "image"])
def test_packed_rows_give_each_example_its_unpacked_logits_and_loss(tmp_path, attention):
    """The wall: logits and loss of a packed batch equal the one-example-per-row batch's
    (also with the image tokens attending to each other both ways)."""
    preprocessor = tiny_preprocessor()
    examples = encode_records(_records(tmp_path), preprocessor, 32)
    packed = pack_by_image(examples, max_length=128, seed=3)
    model = build_model(tiny_config(model__decoder__attention=attention),
                        preprocessor.vocabulary_size, max_text_length=32)

    def batches(ex, batch_size):
        ds = make_dataset(ex, IMAGE_SIZE, batch_size)
        return [(x, y, w) for x, y, w in ds.as_numpy_iterator()]

    alone = {}
    for x, y, w in batches(examples, 1):
        logits = np.asarray(model(x))[0]
        key = tuple(x["token_ids"][0][x["padding_mask"][0]])
        alone[key] = logits[: len(key)]

    loss = make_loss()
    total_alone = total_packed = 0.0
    for x, y, w in batches(examples, len(examples)):
        total_alone += float(loss(y, model(x), sample_weight=w)) * w.sum()   # bucketed batches
    for x, y, w in batches(packed, len(packed)):
        logits = np.asarray(model(x))
        total_packed += float(loss(y, logits, sample_weight=w)) * w.sum()
        for row in range(len(x["token_ids"])):
            ids, mask = x["token_ids"][row], x["padding_mask"][row]
            starts = [0] + [i + 1 for i in np.flatnonzero(~mask) if i + 1 < len(ids)]
            found = 0
            for s in starts:
                end = s
                while end < len(ids) and mask[end]:
                    end += 1
                if end > s:
                    np.testing.assert_allclose(logits[row, s:end], alone[tuple(ids[s:end])],
                                               atol=1e-4)
                    found += 1
            assert found == 3                                      # 3 examples in each row
    assert total_packed == pytest.approx(total_alone, rel=1e-5)


def test_packing_needs_a_causal_transformer():
    config = tiny_config(data__pack_by_image="true", model__decoder__name="lstm")
    with pytest.raises(ConfigError, match="pack_by_image"):
        build_model(config, 50)
    config = tiny_config(data__pack_by_image="true", model__decoder__attention="prefix")
    with pytest.raises(ConfigError, match="first packed question"):
        build_model(config, 50)
