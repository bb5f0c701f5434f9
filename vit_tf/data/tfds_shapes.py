"""The shapes world as a TensorFlow Datasets builder: ``tfds.load("vit_tf_shapes", data_dir=...)``.

Importing this module registers the builder. It generates the scenes in memory (no download)
with the same seeds as :func:`vit_tf.data.shapes.write_shapes_world`, so the records and images
equal those of ``vit-tf data shapes`` with the same sizes and seed. One example per record::

    image          PNG-encoded (canvas, canvas, 3) uint8
    id, category   text
    conversations  sequence of {"from", "value"} text pairs

Example:
    >>> import tensorflow_datasets as tfds
    >>> import vit_tf.data.tfds_shapes  # registers "vit_tf_shapes"
    >>> ds = tfds.load("vit_tf_shapes", split="test", data_dir="~/tfds")
    >>> tiny = ShapesBuilderConfig(name="tiny", n_train=8, n_test=4)
    >>> ds = tfds.load("vit_tf_shapes", split="train", data_dir="/tmp/tfds",
    ...                builder_kwargs={"config": tiny})
"""

import dataclasses
import io

import tensorflow_datasets as tfds

from vit_tf.data.shapes import SPLITS, ShapesConfig, generate_scene, render_scene, scene_records
from vit_tf.data.shapes import scene_rngs


@dataclasses.dataclass
class ShapesBuilderConfig(tfds.core.BuilderConfig):
    """How many scenes per split, the seed, and the world's ``ShapesConfig``."""

    n_train: int = 2000
    n_test: int = 200
    seed: int = 0
    world: ShapesConfig = ShapesConfig()


class VitTfShapes(tfds.core.GeneratorBasedBuilder):
    """Shapes-world instruction data (registered as ``vit_tf_shapes``)."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "First release: the vit_tf shapes world, eight question families."}
    BUILDER_CONFIGS = [ShapesBuilderConfig(name="default",
                                           description="2000 train / 200 test scenes, seed 0")]

    def _info(self):
        size = self.builder_config.world.canvas_size
        return self.dataset_info_from_configs(
            description="Coloured circles, squares and triangles with exactly answered "
                        "questions (vit_tf.data.shapes).",
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=(size, size, 3), encoding_format="png"),
                "id": tfds.features.Text(),
                "category": tfds.features.Text(),
                "conversations": tfds.features.Sequence({"from": tfds.features.Text(),
                                                         "value": tfds.features.Text()}),
            }),
            supervised_keys=None,
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # nothing to download: scenes are generated
        config = self.builder_config
        counts = {"train": config.n_train, "test": config.n_test}
        return {split: self._generate_examples(split) for split in SPLITS if counts[split]}

    def _generate_examples(self, split):
        config = self.builder_config
        count = config.n_train if split == "train" else config.n_test
        split_index = SPLITS.index(split)
        for index in range(count):
            scene_rng, question_rng = scene_rngs(config.seed, split_index, index)
            scene = generate_scene(scene_rng, config.world)
            buffer = io.BytesIO()
            render_scene(scene, config.world).save(buffer, format="PNG")
            png = buffer.getvalue()
            for record in scene_records(scene, question_rng, config.world, split, index):
                yield record["id"], {
                    "image": png,
                    "id": record["id"],
                    "category": record["category"],
                    "conversations": {"from": [t["from"] for t in record["conversations"]],
                                      "value": [t["value"] for t in record["conversations"]]},
                }
