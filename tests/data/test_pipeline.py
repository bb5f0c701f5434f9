"""Tests for the tf.data pipeline: exact shapes, shifted labels/weights, images as outside tf.data."""

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from tests.helpers import tiny_preprocessor, write_image
from vit_tf.config import ConfigError
from vit_tf.data.pipeline import (cached_image_bytes, encode_records, make_dataset,
                                    parse_widths, without_autotune_thread)
from vit_tf.data.image_converter import decode_image


def encode(conversation):
    """The preprocessor's (ids, trained) as trained, without the final label-shift [PAD]."""
    ids, mask = tiny_preprocessor().encode_conversations([conversation])[0]
    return ids[:-1], mask[:-1]

IMAGE_SIZE = 16
MAX_TEXT_LENGTH = 32

# (file name, PIL mode, (width, height), format)
IMAGES = [
    ("gray.png", "L", (20, 12), None),
    ("rgba.png", "RGBA", (16, 16), None),
    ("palette.png", "P", (30, 24), None),
    ("photo.jpg", "RGB", (24, 40), "JPEG"),
]
CONVERSATIONS = [
    [
        {"from": "human", "value": "<image>\nWhat colour is the circle?"},
        {"from": "gpt", "value": "The circle is red."},
        {"from": "human", "value": "Is it big"},
        {"from": "gpt", "value": "yes"},
    ],
    [
        {"from": "human", "value": "How many squares are there\n<image>"},
        {"from": "gpt", "value": "there are two squares"},
    ],
    [
        {"from": "human", "value": "<image>\nwhat is on the right"},
        {"from": "gpt", "value": "a green square on the right"},
        {"from": "human", "value": "and what is on the left"},
        {"from": "gpt", "value": "a blue triangle on the left"},
    ],
    [
        {"from": "human", "value": "Is it big"},
        {"from": "gpt", "value": "yes it is big"},
    ],
]


@pytest.fixture
def records(tmp_path):
    out = []
    for i, ((name, mode, size, fmt), conv) in enumerate(zip(IMAGES, CONVERSATIONS)):
        path = write_image(tmp_path / name, size=size, mode=mode, seed=i, format=fmt)
        out.append({"id": f"rec{i}", "image_path": path, "conversations": conv})
    return out


def _rows(records, batch_size=None, cache_images=False, widths=None):
    """Every example the dataset yields, matched back to its record.

    -> (examples, {record index: dict of that row's images, token_ids, padding_mask, labels,
    weights}, list of batches). Rows are matched by their unpadded token ids, so the tests hold
    whatever order or padding width (bucketing) the pipeline uses.
    """
    examples = encode_records(records, tiny_preprocessor(), MAX_TEXT_LENGTH)
    ds = make_dataset(examples, IMAGE_SIZE, batch_size or len(records), cache_images=cache_images,
                      widths=widths)
    batches = list(ds)
    rows = {}
    for inputs, labels, weights in batches:
        for b in range(labels.shape[0]):
            row = {k: v[b].numpy() for k, v in inputs.items()}
            row.update(labels=labels[b].numpy(), weights=weights[b].numpy())
            matches = [
                i for i in range(len(records))
                if row["token_ids"][: examples.lengths[i]].tolist()
                == examples.token_ids[i, : examples.lengths[i]].tolist()
            ]
            assert len(matches) == 1
            assert matches[0] not in rows, "a record was yielded twice"
            rows[matches[0]] = row
    return examples, rows, batches


def test_dataset_outputs_have_the_documented_shapes_and_dtypes(records):
    examples, _, batches = _rows(records)
    for inputs, labels, weights in batches:
        assert set(inputs) == {"images", "token_ids", "padding_mask"}
        n, length = labels.shape
        assert inputs["images"].shape == (n, IMAGE_SIZE, IMAGE_SIZE, 3)
        assert inputs["images"].dtype == tf.float32
        assert inputs["token_ids"].shape == (n, length) and inputs["token_ids"].dtype == tf.int32
        assert inputs["padding_mask"].shape == (n, length)
        assert inputs["padding_mask"].dtype == tf.bool
        assert labels.dtype == tf.int32
        assert weights.shape == (n, length) and weights.dtype == tf.float32
        lengths = inputs["padding_mask"].numpy().sum(axis=1)
        assert lengths.max() <= length <= MAX_TEXT_LENGTH + 1


def test_every_record_is_yielded_exactly_once(records):
    _, rows, batches = _rows(records, batch_size=3)
    assert sorted(rows) == list(range(len(records)))
    assert sum(b[1].shape[0] for b in batches) == len(records)
    assert max(b[1].shape[0] for b in batches) <= 3


def test_datasets_run_without_the_autotune_thread_unless_their_options_say_so(records):
    # TF 2.21 waits for the autotuning thread's next tick (up to a minute) whenever a fit's
    # iterator is destroyed: the library's datasets turn it off, a user's explicit choice stands.
    ds = make_dataset(encode_records(records, tiny_preprocessor(), MAX_TEXT_LENGTH), 16, 2)
    assert ds.options().autotune.enabled is False
    assert without_autotune_thread(tf.data.Dataset.range(3)).options().autotune.enabled is False
    chosen = tf.data.Options()
    chosen.autotune.enabled = True
    kept = without_autotune_thread(tf.data.Dataset.range(3).with_options(chosen))
    assert kept.options().autotune.enabled is True
    assert list(kept.as_numpy_iterator()) == [0, 1, 2]


def test_given_pad_widths_replace_the_buckets_and_keep_every_row_exact(records):
    examples, default_rows, default_batches = _rows(records, batch_size=2)
    assert len({b[1].shape[1] for b in default_batches}) > 1      # bucketed: several widths
    width = int(examples.lengths.max()) + 3
    _, rows, batches = _rows(records, batch_size=2, widths=[width])
    assert {b[1].shape[1] for b in batches} == {width}              # one width: one XLA shape
    for i, row in rows.items():
        n = examples.lengths[i]
        for key in ("token_ids", "padding_mask", "labels", "weights"):
            np.testing.assert_array_equal(row[key][:n], default_rows[i][key][:n])
        assert not row["padding_mask"][n:].any() and not row["weights"][n:].any()


def test_bucket_widths_are_the_documented_ones():
    from vit_tf.data.pipeline import bucket_widths

    assert bucket_widths(160) == [16, 24, 40, 64, 96, 144, 160]   # README, config.py


def test_parse_widths_reads_sorted_widths_and_refuses_bad_ones():
    assert parse_widths("", 50) is None
    assert parse_widths("96, 48", 90) == [48, 96]
    with pytest.raises(ConfigError, match="data.pad_widths='a,b'.*integers"):
        parse_widths("a,b", 10)
    with pytest.raises(ConfigError, match="data.pad_widths='32'.*longest text \\(40 tokens\\)"):
        parse_widths("32", 40)


def test_images_are_resized_to_image_size_and_stay_in_0_255(records):
    _, rows, _ = _rows(records)
    for row in rows.values():
        assert row["images"].shape == (IMAGE_SIZE, IMAGE_SIZE, 3)
        assert row["images"].min() >= 0.0 and row["images"].max() <= 255.0
        assert row["images"].max() > 1.0  # not rescaled to [0, 1]
    gray = rows[0]["images"]  # grayscale becomes three equal channels
    np.testing.assert_array_equal(gray[..., 0], gray[..., 1])
    np.testing.assert_array_equal(gray[..., 0], gray[..., 2])


def test_token_ids_are_the_encoded_segments_right_padded_with_pad(records):
    examples, rows, _ = _rows(records)
    pad = tiny_preprocessor().pad_id
    for i, record in enumerate(records):
        ids, mask = encode(record["conversations"])
        n = len(ids)
        assert examples.lengths[i] == n
        np.testing.assert_array_equal(rows[i]["token_ids"][:n], ids)
        assert (rows[i]["token_ids"][n:] == pad).all()
        np.testing.assert_array_equal(examples.trained[i, :n], mask)
        assert not examples.trained[i, n:].any()
    assert examples.record_ids == [r["id"] for r in records]


def test_labels_are_token_ids_shifted_left_by_one(records):
    _, rows, _ = _rows(records)
    pad = tiny_preprocessor().pad_id
    for row in rows.values():
        np.testing.assert_array_equal(row["labels"][:-1], row["token_ids"][1:])
        assert row["labels"][-1] == pad


def test_sample_weight_is_the_trained_mask_shifted_left_by_one(records):
    examples, rows, _ = _rows(records)
    for i, row in rows.items():
        width = len(row["weights"])
        trained = np.zeros(width + 1, bool)
        n = min(width + 1, examples.trained.shape[1])
        trained[:n] = examples.trained[i, :n]
        np.testing.assert_array_equal(row["weights"], trained[1:].astype(np.float32))
        # every trained token is a weighted label somewhere (the first token is a role token)
        assert row["weights"].sum() == examples.trained[i].sum()


def test_padding_mask_is_true_exactly_before_the_text_length(records):
    examples, rows, _ = _rows(records)
    for i, row in rows.items():
        positions = np.arange(len(row["padding_mask"]))
        np.testing.assert_array_equal(row["padding_mask"], positions < examples.lengths[i])


def test_record_longer_than_max_text_length_raises_naming_the_record(records):
    long = dict(records[1], id="too_long_one")
    long["conversations"] = [
        {"from": "human", "value": "is it big " * 20},
        {"from": "gpt", "value": "yes"},
    ]
    with pytest.raises(ValueError, match="'too_long_one'.*max_text_length=32"):
        encode_records([records[0], long], tiny_preprocessor(), MAX_TEXT_LENGTH)


def test_record_of_exactly_max_text_length_keeps_its_last_label(records):
    pre = tiny_preprocessor()
    n = len(encode(records[0]["conversations"])[0])
    examples = encode_records([records[0]], pre, n)
    assert examples.token_ids.shape[1] == n + 1
    _, labels, weights = next(iter(make_dataset(examples, IMAGE_SIZE, 1)))
    end_id = pre.stop_id
    assert labels.numpy()[0, n - 2] == end_id and weights.numpy()[0, n - 2] == 1.0


def test_images_inside_tf_data_equal_the_preprocessor_outside_it(records):
    _, rows, _ = _rows(records)
    for i, record in enumerate(records):
        outside = tiny_preprocessor().convert_images(record["image_path"]).numpy()
        np.testing.assert_array_equal(rows[i]["images"], outside)


@pytest.mark.parametrize("mode", ["L", "RGBA", "P"])
def test_decode_image_converts_to_the_same_rgb_pixels_as_pil(tmp_path, mode):
    path = write_image(tmp_path / f"{mode}.png", size=(IMAGE_SIZE, IMAGE_SIZE), mode=mode)
    expected = np.asarray(Image.open(path).convert("RGB"), np.float32)
    np.testing.assert_allclose(decode_image(path, IMAGE_SIZE).numpy(), expected, atol=1e-3)


def test_cached_images_give_the_same_rows_as_streamed_images_up_to_rounding(records, tmp_path):
    # Two more records on an image already used, and one 16x16 image that needs no resize.
    same_size = write_image(tmp_path / "exact.png", size=(IMAGE_SIZE, IMAGE_SIZE), seed=9)
    records = records + [
        {"id": "again", "image_path": records[0]["image_path"], "conversations": [
            {"from": "human", "value": "<image>\nwhat is on the right"},
            {"from": "gpt", "value": "yes"}]},
        {"id": "exact", "image_path": same_size, "conversations": CONVERSATIONS[3][:1]
         + [{"from": "gpt", "value": "no"}]},
    ]
    examples, streamed, _ = _rows(records, batch_size=2)
    _, cached, _ = _rows(records, batch_size=2, cache_images=True)
    assert sorted(cached) == sorted(streamed) == list(range(len(records)))
    for i in streamed:
        for key in ("token_ids", "padding_mask", "labels", "weights"):
            np.testing.assert_array_equal(cached[i][key], streamed[i][key])
        np.testing.assert_allclose(cached[i]["images"], streamed[i]["images"], atol=0.5)
    np.testing.assert_array_equal(cached[len(records) - 1]["images"],
                                  streamed[len(records) - 1]["images"])
    assert cached_image_bytes(examples, IMAGE_SIZE) == 5 * IMAGE_SIZE * IMAGE_SIZE * 3
