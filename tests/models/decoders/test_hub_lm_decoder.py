"""keras-hub causal LMs (Gemma, Llama 3) as decoders, from tiny presets written locally.

Each is loaded through the public config path (``model.decoder.name`` + ``model.decoder.preset``),
uses its preset's tokenizer and chat format, trains, generates with its KV cache exactly as
without, and round-trips through ``.keras``.
"""

import keras
import keras_hub
import numpy as np
import pytest
import tensorflow as tf

from tests.helpers import tiny_config
from tests.hub_presets import gemma_preset, llama3_preset
from vit_tf.config import ConfigError
from vit_tf.data.preprocessor import VisionLanguagePreprocessor
from vit_tf.data.preset_tokenizer import preprocessor_for_config, preset_tokenizer
from vit_tf.data.template import END
from vit_tf.models.decoders import LanguageDecoder
from vit_tf.models.factory import build_model, build_task
from vit_tf.models.generation import Generator
from vit_tf.training.optim import compile_model

CONVERSATION = [{"from": "human", "value": "<image>\nWhat colour is the circle?"},
                {"from": "gpt", "value": "The circle is red."}]
PROMPTS = [[{"from": "human", "value": "What colour is the circle?"}],
           [{"from": "human", "value": "Is it big"}]]  # two lengths: rows join the loop apart
STOP = {"gemma": "<end_of_turn>", "llama": "<|eot_id|>"}
CHAT_FORMAT = {"gemma": "gemma", "llama": "llama3"}
# SEEDED_FIRST: keras.utils.set_random_seed (tf.random.set_seed) clears TF's eager kernel cache,
# which owns a keras-hub SentencePiece tokenizer's model resource: a tf.function over a Gemma
# tokenizer made BEFORE the seed fails with "SentencepieceOp ... does not exist" (plain
# keras-hub too). The tests seed first, as ``train`` does.
TOKENIZER = {"gemma": keras_hub.tokenizers.GemmaTokenizer,
             "llama": keras_hub.tokenizers.Llama3Tokenizer}


@pytest.fixture(scope="module")
def presets(tmp_path_factory):
    root = tmp_path_factory.mktemp("hub_lm")
    return {"gemma": gemma_preset(root / "gemma"), "llama": llama3_preset(root / "llama")}


@pytest.fixture
def _eager():
    tf.config.run_functions_eagerly(True)  # tracing the generation loop would dominate
    yield
    tf.config.run_functions_eagerly(False)


def _batch(pre, image_size):
    ids, trained = pre.encode_conversations([CONVERSATION])[0]
    ids, trained = np.array([ids, ids], "int32"), np.array([trained, trained], "float32")
    images = np.random.default_rng(0).uniform(0, 255, (2, image_size, image_size, 3))
    inputs = {"images": images.astype("float32"), "token_ids": ids[:, :-1],
              "padding_mask": np.ones_like(ids[:, :-1], bool)}
    return inputs, ids[:, 1:], trained[:, 1:]


@pytest.mark.usefixtures("_eager")
@pytest.mark.parametrize("family, trainable", [("gemma", True), ("llama", False)])
def test_hub_lm_decoder_trains_generates_with_cache_and_round_trips(family, trainable, presets,
                                                                   tmp_path):
    folder, table = presets[family]
    config = tiny_config(model__decoder__name=family, model__decoder__preset=folder,
                         model__decoder__trainable=str(trainable), data__max_text_length=96)
    # Seeded before any SentencePiece tokenizer exists: TF's set_seed drops the eager kernels
    # that own its resource, and later tf.functions over the tokenizer fail (see SEEDED_FIRST).
    keras.utils.set_random_seed(0)
    tok, chat_format = preset_tokenizer(config)
    assert isinstance(tok, TOKENIZER[family]) and chat_format == CHAT_FORMAT[family]
    pre = preprocessor_for_config(config)  # no texts needed: the preset brings its vocabulary
    assert pre.chat_format == CHAT_FORMAT[family] and pre.vocabulary_size == tok.vocabulary_size()
    assert pre.stop_id == tok.token_to_id(STOP[family])  # the family's stop token
    assert pre.special_ids()[END] == pre.stop_id
    model = build_task(config, pre)
    decoder = model.decoder
    assert decoder.hidden_dim == 16 and model.projector.compute_output_shape((1, 4, 16))[-1] == 16
    np.testing.assert_array_equal(decoder.backbone.token_embedding.embeddings.numpy(), table)

    inputs, labels, weights = _batch(pre, config.data.image_size)
    # The KV cache: prefill all but the last token, then one cached step == the full forward.
    full = np.asarray(model(inputs))
    ids, n = inputs["token_ids"], inputs["token_ids"].shape[1]
    cache = model.init_cache(2, n)
    image_tokens = model.encode_images(inputs["images"])
    prefill, cache = model.prefill(None, ids[:, :-1], cache, image_tokens=image_tokens)
    step, _ = model.call_with_cache(ids[:, -1:], cache, n - 1, image_tokens=image_tokens)
    np.testing.assert_allclose(np.asarray(prefill), full[:, :-1], atol=1e-4)
    np.testing.assert_allclose(np.asarray(step)[:, 0], full[:, -1], atol=1e-4)
    # The image reaches the text logits.
    assert not np.allclose(np.asarray(model(dict(inputs, images=inputs["images"][::-1]))), full)

    compile_model(model, config.train, total_steps=4)
    lm_before = [w.numpy().copy() for w in decoder.backbone.weights]
    projector_before = [w.numpy().copy() for w in model.projector.weights]
    model.run_eagerly = True
    for _ in range(2):  # the warmup starts at a learning rate of 0
        loss = np.ravel(model.train_on_batch(inputs, labels, sample_weight=weights))[0]
    assert np.isfinite(loss)
    lm_moved = any(not np.array_equal(b, w.numpy()) for b, w in zip(lm_before, decoder.backbone.weights))
    assert lm_moved == trainable  # trainable=false freezes the LM ...
    assert all(not np.array_equal(b, w.numpy())  # ... but never the projector
               for b, w in zip(projector_before, model.projector.weights))

    cached = Generator(model, max_new_tokens=4, jit_compile=False)
    uncached = Generator(model, max_new_tokens=4, use_cache=False, jit_compile=False)
    answers = cached.generate_ids(inputs["images"], PROMPTS)
    assert answers == uncached.generate_ids(inputs["images"], PROMPTS)

    live = np.asarray(model(inputs))
    model.save(tmp_path / "model.keras")
    reloaded = keras.saving.load_model(tmp_path / "model.keras")
    np.testing.assert_array_equal(np.asarray(reloaded(inputs)), live)


@pytest.mark.parametrize("fusion", ["cross_attention"])  # attention_pooling, resampler: see README
def test_other_fusions_read_into_the_lm_and_keep_its_cache_exact(fusion, presets):
    folder, _ = presets["gemma"]
    config = tiny_config(model__decoder__name="gemma", model__decoder__preset=folder,
                         model__fusion__name=fusion, model__fusion__num_heads=2,
                         model__fusion__num_queries=3, model__fusion__gated="false")
    keras.utils.set_random_seed(0)  # before the SentencePiece tokenizer exists (SEEDED_FIRST)
    pre = preprocessor_for_config(config)
    model = build_task(config, pre)
    assert isinstance(model.decoder, LanguageDecoder)
    assert model.decoder.fusion.num_layers == 1 and model.decoder.fusion.hidden_dim == 16
    inputs, _, _ = _batch(pre, config.data.image_size)
    full = np.asarray(model(inputs))
    ids, n = inputs["token_ids"], inputs["token_ids"].shape[1]
    image_tokens = model.encode_images(inputs["images"])
    _, cache = model.prefill(None, ids[:, :-1], model.init_cache(2, n), image_tokens=image_tokens)
    step, _ = model.call_with_cache(ids[:, -1:], cache, n - 1, image_tokens=image_tokens)
    np.testing.assert_allclose(np.asarray(step)[:, 0], full[:, -1], atol=1e-4)
    assert not np.allclose(np.asarray(model(dict(inputs, images=inputs["images"][::-1]))), full)


def _preset_preprocessor(presets, family):
    tok = keras_hub.tokenizers.Tokenizer.from_preset(presets[family][0])
    return VisionLanguagePreprocessor(tok, CHAT_FORMAT[family], image_size=16, max_text_length=96)


def test_preset_tokenizer_writes_the_family_chat_format_and_trains_only_the_answer(presets):
    pre = _preset_preprocessor(presets, "gemma")
    ids, trained = pre.encode_conversations([CONVERSATION])[0]
    pieces = [pre.id_to_token(i) for i in ids]
    assert pieces[:4] == ["<bos>", "<start_of_turn>", "user", "\n"]
    assert "<image>" not in "".join(pieces)
    assert pieces.count("<start_of_turn>") == 2 and "model" in pieces
    answer = [p for p, t in zip(pieces, trained) if t]
    assert answer[0] == "The" and answer[-2:] == ["<end_of_turn>", "\n"]
    assert not any(trained[: pieces.index("model") + 2])
    assert ids[-1] == pre.pad_id == 0 and not trained[-1]  # the training [PAD], untrained
    # The generation prompt: the human turn, then the open "<start_of_turn>model\n" marker.
    prompt, prompt_trained = pre.encode_conversations([CONVERSATION[:1]],
                                                      add_generation_prompt=True)[0]
    assert prompt.tolist() == ids[: pieces.index("model") + 2].tolist() and not prompt_trained.any()


def test_llama3_chat_format_uses_header_ids_and_stops_at_eot(presets):
    pre = _preset_preprocessor(presets, "llama")
    tok = pre.tokenizer
    ids, trained = pre.encode_conversations([CONVERSATION])[0]
    pieces = [pre.id_to_token(i) for i in ids]
    assert pieces[:4] == ["<|begin_of_text|>", "<|start_header_id|>", "user", "<|end_header_id|>"]
    assert pieces.count("<|start_header_id|>") == pieces.count("<|end_header_id|>") == 2
    assert pieces.count("<|eot_id|>") == 2 and pre.stop_id == tok.token_to_id("<|eot_id|>")
    answer = [p for p, t in zip(pieces, trained) if t]
    assert "".join(answer) == "TheĠcircleĠisĠred.<|eot_id|>"   # the answer and its end only
    second_header = len(pieces) - 1 - pieces[::-1].index("<|end_header_id|>")
    assert not any(trained[: second_header + 3])            # ... <|end_header_id|> \n \n
    prompt, _ = pre.encode_conversations([CONVERSATION[:1]], add_generation_prompt=True)[0]
    assert prompt.tolist() == ids[: second_header + 3].tolist()


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"model__decoder__name": "gemma"}, "needs model.decoder.preset"),
        ({"model__decoder__preset": "/x"}, "does not use it"),
        ({"model__decoder__trainable": "false"}, "starts from random weights"),
        ({"model__decoder__name": "llama", "model__decoder__preset": "/x",
          "model__decoder__attention": "prefix"}, "needs the transformer decoder"),
        ({"model__decoder__name": "gemma", "model__decoder__preset": "/x",
          "model__text_embedding__name": "keras_hub", "model__text_embedding__preset": "/y"},
         "own token embedding"),
    ],
)
def test_senseless_hub_lm_settings_are_refused_before_loading(overrides, message):
    with pytest.raises(ConfigError, match=message):
        build_model(tiny_config(**overrides), 50)


def test_fusion_heads_that_do_not_divide_the_lm_width_are_refused(presets):
    config = tiny_config(model__decoder__name="gemma", model__decoder__preset=presets["gemma"][0],
                         model__fusion__name="resampler", model__fusion__num_heads=3)
    with pytest.raises(ConfigError, match="num_heads=3 must divide the decoder's hidden_dim=16"):
        build_model(config, 50)


def test_tokenizer_with_more_ids_than_the_lm_is_refused(presets):
    config = tiny_config(model__decoder__name="llama", model__decoder__preset=presets["llama"][0])
    with pytest.raises(ConfigError, match="the tokenizer has 100000 ids but the LM only"):
        build_model(config, 100000)


def test_preset_of_another_family_is_refused(presets):
    config = tiny_config(model__decoder__name="gemma", model__decoder__preset=presets["llama"][0])
    with pytest.raises(ValueError, match="Llama3Backbone, not a GemmaBackbone"):
        build_model(config, 50)


def test_gemma_run_folder_generates_through_the_cli_and_keeps_its_tokenizer(presets, tmp_path,
                                                                           capsys):
    """The user's path: a run folder of a gemma model (as ``train`` writes it: the preset files
    and config.json) -> ``vit-tf generate``; the run keeps Gemma's tokenizer and chat format;
    ``vit-tf export`` serves the same answer from the SavedModel (the preprocessor in-graph)."""
    import json
    import os

    from tests.helpers import write_image
    from vit_tf.cli import main
    from vit_tf.config import save_config
    from vit_tf.runs import load_task

    run = str(tmp_path / "run")
    config = tiny_config(model__decoder__name="gemma", model__decoder__preset=presets["gemma"][0],
                         generate__max_new_tokens=3)
    keras.utils.set_random_seed(0)
    task = build_task(config, preprocessor_for_config(config))
    task.save_to_preset(run, generate_config=config.generate)
    save_config(config, os.path.join(run, "config.json"))
    assert os.listdir(os.path.join(run, "assets", "tokenizer"))  # Gemma's SentencePiece proto
    with open(os.path.join(run, "preprocessor.json")) as f:
        assert json.load(f)["config"]["chat_format"] == "gemma"
    loaded = load_task(run).preprocessor
    assert isinstance(loaded.tokenizer, keras_hub.tokenizers.GemmaTokenizer)
    assert loaded.chat_format == "gemma"
    assert loaded.stop_id == task.preprocessor.tokenizer.token_to_id("<end_of_turn>")
    image = write_image(tmp_path / "a.png", size=(16, 16))
    capsys.readouterr()
    assert main(["generate", "--model", run, "--image", image,
                 "--prompt", "What colour is the circle?", "--no-xla"]) == 0
    answer = capsys.readouterr().out.strip()
    assert answer  # an answer line (random tiny LM: any text)
    assert main(["export", "--model", run, "--out", str(tmp_path / "ex")]) == 0
    import tensorflow_text  # noqa: F401  (registers the tokenizer ops of the SavedModel)

    serve = tf.saved_model.load(str(tmp_path / "ex")).signatures["serving_default"]
    with open(image, "rb") as f:
        out = serve(images=tf.constant([f.read()]), prompts=tf.constant(["What colour is the circle?"]),
                    max_new_tokens=tf.constant(3))
    assert out["text"].numpy()[0].decode() == answer


@pytest.mark.parametrize("family", ["gemma", "llama"])
def test_hub_lm_decoder_text_logits_equal_keras_hubs_causal_lm_and_generate_under_xla(family,
                                                                                     presets):
    """Without images our decoder is the LM itself: its logits (embedding scale, masks, final
    norm, soft cap) must equal keras-hub's own CausalLM on the same backbone, right padding
    included. Then (Gemma) the compiled (XLA) generation loop gives the eager loop's tokens."""
    folder, _ = presets[family]
    config = tiny_config(model__decoder__name=family, model__decoder__preset=folder,
                         data__max_text_length=48)
    keras.utils.set_random_seed(0)  # before the SentencePiece tokenizer exists (SEEDED_FIRST)
    pre = preprocessor_for_config(config)
    model = build_task(config, pre)
    backbone = model.decoder.backbone
    causal_lm = {"gemma": keras_hub.models.GemmaCausalLM,
                 "llama": keras_hub.models.Llama3CausalLM}[family](backbone=backbone,
                                                                  preprocessor=None)
    rng = np.random.default_rng(0)
    ids = rng.integers(3, pre.vocabulary_size, (2, 9)).astype("int32")
    mask = np.ones_like(ids, bool)
    mask[1, 6:] = False                                        # a right-padded row
    ours = np.asarray(model.decoder(ids, padding_mask=mask))
    theirs = np.asarray(causal_lm({"token_ids": ids, "padding_mask": mask}))
    np.testing.assert_allclose(ours[0], theirs[0], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ours[1, :6], theirs[1, :6], rtol=1e-5, atol=1e-5)

    if family != "gemma":   # compiling one family's loop is enough (they share Generator)
        return
    inputs, _, _ = _batch(pre, config.data.image_size)
    tf.config.run_functions_eagerly(True)
    try:
        eager = Generator(model, max_new_tokens=3, jit_compile=False).generate_ids(
            inputs["images"], PROMPTS)
    finally:
        tf.config.run_functions_eagerly(False)
    compiled = Generator(model, max_new_tokens=3, jit_compile=True)
    assert compiled.generate_ids(inputs["images"], PROMPTS) == eager


def test_tfrecord_shards_tokenize_with_a_preset_tokenizer_as_in_memory(presets, tmp_path):
    """Shard training runs the preprocessor inside the graph; with Gemma's SentencePiece it
    yields exactly the ids and loss masks of the in-memory pipeline (the README once said
    shards needed our WordPiece)."""
    from vit_tf.data.pipeline import encode_records
    from vit_tf.data.shapes import ShapesConfig, write_shapes_world
    from vit_tf.data.shards import shard_examples, write_shards
    from vit_tf.data.sources import read_llava

    config = tiny_config(model__decoder__name="gemma", model__decoder__preset=presets["gemma"][0],
                         data__max_text_length=96)
    keras.utils.set_random_seed(0)  # before the SentencePiece tokenizer exists (SEEDED_FIRST)
    pre = preprocessor_for_config(config)
    write_shapes_world(tmp_path, 2, 0, seed=0, config=ShapesConfig(canvas_size=16, max_objects=1))
    records = read_llava(tmp_path / "train.json", tmp_path).records[:5]
    write_shards(records, tmp_path / "shards", 2)
    memory = encode_records(records, pre, 96)
    streamed = list(shard_examples(tmp_path / "shards", pre).as_numpy_iterator())
    assert len(streamed) == len(records)
    for i, (inputs, labels, weights) in enumerate(streamed):
        n = int(memory.lengths[i])                      # input tokens (labels: shifted by 1)
        np.testing.assert_array_equal(inputs["token_ids"], memory.token_ids[i, :n])
        np.testing.assert_array_equal(labels, memory.token_ids[i, 1:n + 1])
        np.testing.assert_array_equal(weights > 0, memory.trained[i, 1:n + 1])
        assert weights.sum() > 0
