"""TFRecord shards: written by `vit-tf data shard`, read back exactly as the in-memory pipeline."""

import json

import numpy as np
import pytest
import tensorflow as tf

from tests.helpers import tiny_config, tiny_preprocessor
from vit_tf.cli import main
from vit_tf.data.pipeline import encode_records, make_dataset
from vit_tf.data.shapes import ShapesConfig, write_shapes_world
from vit_tf.data.shards import (
    distributed_shard_dataset,
    read_shard_records,
    shard_dataset,
    shard_examples,
    write_shards,
)
from vit_tf.data.sources import read_llava

IMAGE_SIZE = 16


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    out = tmp_path_factory.mktemp("world")
    write_shapes_world(out, n_train=3, n_test=1, seed=0,
                       config=ShapesConfig(canvas_size=32, max_objects=2))
    records = read_llava(out / "train.json", out).records
    write_shards(records, out / "shards", 3)
    return out, records


def test_sharded_reading_yields_exactly_the_in_memory_examples(world):
    out, records = world
    preprocessor = tiny_preprocessor()
    memory = list(make_dataset(encode_records(records, preprocessor, 200), IMAGE_SIZE, 1)
                  .as_numpy_iterator())
    sharded = list(shard_examples(out / "shards", preprocessor).as_numpy_iterator())
    assert len(sharded) == len(memory) == len(records)
    for (m_in, m_labels, m_weights), (s_in, s_labels, s_weights) in zip(memory, sharded):
        n = int(m_in["padding_mask"].sum())        # make_dataset pads to its bucket width
        np.testing.assert_array_equal(s_in["token_ids"], m_in["token_ids"][0, :n])
        np.testing.assert_array_equal(s_labels, m_labels[0, :n])
        np.testing.assert_array_equal(s_weights, m_weights[0, :n])
        np.testing.assert_array_equal(s_in["images"], m_in["images"][0])
        assert s_weights.sum() > 0


def test_shards_keep_records_and_encoded_image_bytes(world):
    out, records = world
    back = list(read_shard_records(out / "shards"))
    assert [r["id"] for r in back] == [r["id"] for r in records]
    assert back[0]["conversations"] == records[0]["conversations"]
    manifest = json.loads((out / "shards" / "manifest.json").read_text())
    assert manifest["num_records"] == len(records) and sum(manifest["records_per_shard"]) == len(records)
    raw = next(iter(tf.data.TFRecordDataset(str(out / "shards" / manifest["files"][0]))))
    example = tf.train.Example.FromString(raw.numpy())
    with open(records[0]["image_path"], "rb") as f:
        assert example.features.feature["image"].bytes_list.value[0] == f.read()


def test_each_input_pipeline_reads_its_own_shards_under_tf_distribute(world):
    out, records = world
    preprocessor = tiny_preprocessor()
    seen = []
    for worker in range(3):
        context = tf.distribute.InputContext(num_input_pipelines=3, input_pipeline_id=worker)
        ds = shard_examples(out / "shards", preprocessor, input_context=context)
        seen.append([tuple(ex[0]["token_ids"]) for ex in ds.as_numpy_iterator()])
    # round-robin writing: worker k reads exactly records k, k + 3, k + 6, ...
    assert [len(s) for s in seen] == [len(records[k::3]) for k in range(3)]
    encoded = encode_records(records, preprocessor, 200)
    for k in range(3):
        expected = [tuple(encoded.token_ids[i, :encoded.lengths[i]])
                    for i in range(k, len(records), 3)]
        assert seen[k] == expected
    context = tf.distribute.InputContext(num_input_pipelines=4, input_pipeline_id=0)
    with pytest.raises(ValueError, match="3 shard files for 4 input pipelines"):
        shard_examples(out / "shards", preprocessor, input_context=context)
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    batches = list(distributed_shard_dataset(strategy, out / "shards", preprocessor, 4, 200))
    assert sum(int(b[0]["token_ids"].shape[0]) for b in batches) == len(records)


def test_records_longer_than_the_context_fail_or_are_skipped(world):
    out, _ = world
    preprocessor = tiny_preprocessor()
    with pytest.raises(tf.errors.InvalidArgumentError, match="longer than data.max_text_length=8"):
        list(shard_dataset(out / "shards", preprocessor, 4, 8))
    assert list(shard_dataset(out / "shards", preprocessor, 4, 8,
                              skip_too_long=True)) == []


def test_data_shard_command_and_its_errors(world, tmp_path, capsys):
    out, records = world
    assert main(["data", "shard", "--data", str(out / "train.json"), "--image-root", str(out),
                 "--out", str(tmp_path / "s"), "--shards", "2"]) == 0
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == [
        "data-00000-of-00002.tfrecord", "data-00001-of-00002.tfrecord", "manifest.json"]
    assert main(["data", "shard", "--data", str(out / "train.json"), "--image-root", str(out),
                 "--out", str(tmp_path / "s"), "--shards", "2"]) == 2
    assert "already holds shards" in capsys.readouterr().err
    bad = json.loads((out / "train.json").read_text())
    bad[1]["conversations"][0]["from"] = "bot"
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    assert main(["data", "shard", "--data", str(tmp_path / "bad.json"), "--image-root", str(out),
                 "--out", str(tmp_path / "t"), "--shards", "2"]) == 2
    err = capsys.readouterr().err
    assert f"bad.json: record '{bad[1]['id']}' field conversations[0].from: unknown role" in err


def test_training_streams_from_shards(world, tmp_path):
    from vit_tf.training.train import train

    out, records = world
    config = tiny_config(train__steps_per_epoch=1, train__num_samples_to_log=1,
                         data__max_text_length=160, data__validation_fraction=0.2)
    summary = train(config, str(out / "shards"), None, str(tmp_path / "run"), log=lambda m: None)
    assert summary["examples"] == len(records) - round(0.2 * len(records))
    assert np.isfinite(summary["history"]["loss"]).all()
    assert np.isfinite(summary["history"]["val_loss"]).all()
    from vit_tf.runs import load_task

    task = load_task(str(tmp_path / "run"))   # the run folder is a preset
    assert task.preprocessor.image_size == config.data.image_size


def test_shuffled_shard_training_data_is_the_same_stream_every_time(world, tmp_path):
    """resumable_fit resumes by skipping the batches already trained on in a fresh copy of the
    training data, so a fresh copy must repeat the stream exactly. Images of very different
    sizes make the parallel decode finish out of order, which a non-deterministic pipeline
    would let through. The data fingerprint covers the shards' bytes."""
    from PIL import Image

    from vit_tf.data.training_data import TrainingData

    out, records = world
    mixed = []
    for i, r in enumerate(records[:6] * 2):
        size = 400 if i % 3 == 0 else 8
        path = tmp_path / f"img_{i}.png"
        noise = np.random.default_rng(i).integers(0, 255, (size, size, 3), dtype=np.uint8)
        Image.fromarray(noise).save(path)
        mixed.append({**r, "id": f"{r['id']}-{i}", "image_path": str(path)})
    write_shards(mixed, tmp_path / "shards", 4)
    preprocessor = tiny_preprocessor()

    def stream():
        batches = shard_dataset(tmp_path / "shards", preprocessor, 1, 200, shuffle=True, seed=0,
                                repeat=True, drop_remainder=True, shuffle_buffer=8)
        return [b[0]["token_ids"].tobytes() + b[0]["images"].tobytes()
                for b in batches.take(len(mixed)).as_numpy_iterator()]

    first = stream()
    assert len(set(first)) > 1
    assert stream() == first
    data = TrainingData(str(tmp_path / "shards"), None, 0, preprocessor, None,
                        list(read_shard_records(tmp_path / "shards")), [])
    fingerprint = data.fingerprint()
    assert fingerprint["records"] == len(mixed) and len(fingerprint["images"]) == 64
    with open(tmp_path / "shards" / "data-00000-of-00004.tfrecord", "ab") as f:
        f.write(b"\0")
    assert data.fingerprint()["images"] != fingerprint["images"]
    assert data.fingerprint()["text"] == fingerprint["text"]
