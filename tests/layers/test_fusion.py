"""Tests for the fusion layers: shapes, the maths each one promises, serialization round trips."""

import keras
import numpy as np
import pytest

from tests.helpers import run_layer_test
from vit_tf.layers.attention_pooling import AttentionPooling, AttentionPoolingFusion
from vit_tf.layers.cross_attention import CrossAttentionFusion, GatedCrossAttention
from vit_tf.layers.fusion import ConcatFusion
from vit_tf.layers.relation_network import (RelationNetwork, RelationNetworkFusion,
                                            grid_coordinates)
from vit_tf.layers.resampler import Resampler, ResamplerFusion
from vit_tf.registry import FUSIONS

HIDDEN = 8


def _tokens(batch, n, seed=0):
    return np.random.default_rng(seed).normal(size=(batch, n, HIDDEN)).astype("float32")


def test_every_fusion_is_registered_under_its_config_name():
    assert {"concat", "cross_attention", "attention_pooling", "resampler",
            "relation_network"} <= set(FUSIONS.names())
    assert FUSIONS.get("resampler") is ResamplerFusion


def test_gated_cross_attention_is_the_identity_at_initialisation_and_ungated_is_not(tmp_path):
    x, img = _tokens(2, 5), _tokens(2, 7, seed=1)
    gated = GatedCrossAttention(HIDDEN, num_heads=2, gated=True, name="gated")
    out = run_layer_test(gated, (x, img), tmp_path, expected_output_shape=(2, 5, HIDDEN))
    np.testing.assert_allclose(out, x, atol=1e-6)  # tanh(0) = 0: the image is ignored at first
    gated.gate.assign(1.0)
    assert not np.allclose(np.asarray(gated(x, img)), x, atol=1e-4)
    plain = GatedCrossAttention(HIDDEN, num_heads=2, gated=False, name="plain")
    out = run_layer_test(plain, (x, img), tmp_path, expected_output_shape=(2, 5, HIDDEN))
    assert not np.allclose(out, x, atol=1e-4)
    assert len(plain.weights) == len(gated.weights) - 1


def test_attention_pooling_follows_the_design_formula(tmp_path):
    x, img = _tokens(2, 3), _tokens(2, 6, seed=1)
    layer = AttentionPooling(HIDDEN, name="pool")
    run_layer_test(layer, (x, img), tmp_path, expected_output_shape=(2, 3, HIDDEN))
    out, alpha = layer(x, img, return_scores=True)
    alpha = np.asarray(alpha)
    np.testing.assert_allclose(alpha.sum(-1), 1.0, atol=1e-5)
    # S = v_i . v_t / sqrt(d) with v_t the normalised text state; alpha = softmax(S).
    q = np.asarray(layer.norm(x))
    s = np.einsum("btd,bnd->btn", q, img) / np.sqrt(HIDDEN)
    expected = np.exp(s - s.max(-1, keepdims=True))
    np.testing.assert_allclose(alpha, expected / expected.sum(-1, keepdims=True), atol=1e-5)
    pooled = np.einsum("btn,bnd->btd", alpha, img)  # v_it = sum_i alpha_i v_i
    combined = np.asarray(layer.combine(np.concatenate([q, pooled], -1)))
    np.testing.assert_allclose(np.asarray(out), x + combined, atol=1e-5)


def test_resampler_maps_any_number_of_image_tokens_to_k_queries(tmp_path):
    layer = Resampler(HIDDEN, num_queries=3, num_heads=2, num_layers=2, name="resampler")
    run_layer_test(layer, _tokens(2, 9), tmp_path, expected_output_shape=(2, 3, HIDDEN))
    assert tuple(layer(_tokens(2, 4)).shape) == (2, 3, HIDDEN)
    # The output depends on the image tokens.
    assert not np.allclose(np.asarray(layer(_tokens(2, 9))), np.asarray(layer(_tokens(2, 9, 5))))


@pytest.mark.parametrize(
    "fusion, prefix_len",
    [
        (lambda: ConcatFusion(HIDDEN, 2, name="f"), 4),
        (lambda: ResamplerFusion(HIDDEN, 2, num_queries=3, num_heads=2, name="f"), 3),
        (lambda: CrossAttentionFusion(HIDDEN, 2, num_heads=2, name="f"), 0),
        (lambda: AttentionPoolingFusion(HIDDEN, 2, name="f"), 0),
        (lambda: RelationNetworkFusion(HIDDEN, 2, relation_dim=4, name="f"), 4),
    ],
    ids=["concat", "resampler", "cross_attention", "attention_pooling", "relation_network"],
)
def test_fusion_interface_prefix_and_reads(fusion, prefix_len, tmp_path):
    fusion = fusion()
    img, x = _tokens(2, 4), _tokens(2, 4, seed=2)   # 4 image tokens: a 2 x 2 grid
    fusion.build((None, None, HIDDEN))
    assert fusion.num_prefix_tokens(4) == prefix_len
    prefix = fusion.prefix(img)
    assert (prefix is None) == (prefix_len == 0)
    if prefix is not None:
        assert tuple(prefix.shape) == (2, prefix_len, HIDDEN)
    changed = [not np.allclose(np.asarray(fusion.read(i, x, img)), x) for i in range(2)]
    expected = {"concat": [False, False], "resampler": [False, False],
                "cross_attention": [False, False],  # gated, gates at 0
                "attention_pooling": [False, True],
                "relation_network": [False, True]}[FUSIONS_BY_CLASS[type(fusion)]]
    assert changed == expected
    if fusion.weights:
        run_layer_test(fusion, img, tmp_path)
    else:
        clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(fusion))
        assert clone.get_config() == fusion.get_config()


FUSIONS_BY_CLASS = {FUSIONS.get(n): n for n in FUSIONS.names()}


def test_relation_network_sums_a_question_conditioned_mlp_over_every_pair_of_tokens(tmp_path):
    x, img = _tokens(2, 3), _tokens(2, 9, seed=1)     # 9 image tokens: a 3 x 3 grid
    layer = RelationNetwork(HIDDEN, relation_dim=5, name="relations")
    out = np.asarray(run_layer_test(layer, (x, img), tmp_path,
                                    expected_output_shape=(2, 3, HIDDEN)))
    # g_ijt = relu(W_a [o_i; c_i] + b + W_b [o_j; c_j] + W_q LN(x_t)); x_t + f(mean_ij g_ijt),
    # written out pair by pair.
    objects = np.concatenate([img, np.broadcast_to(grid_coordinates(9), (2, 9, 2))], -1)
    wa, ba = (np.asarray(w) for w in layer.first.weights)
    wb, wq = np.asarray(layer.second.kernel), np.asarray(layer.query.kernel)
    q = np.asarray(layer.norm(x)) @ wq
    expected = np.zeros((2, 3, 5))
    for i in range(9):
        for j in range(9):
            pair = objects[:, i] @ wa + ba + objects[:, j] @ wb              # (batch, r)
            expected += np.maximum(pair[:, None] + q, 0) / 81
    f = np.asarray(layer.out(layer.hidden(expected.astype("float32"))))
    np.testing.assert_allclose(out, x + f, atol=1e-5)
    # Where the tokens sit matters: the same tokens in another arrangement relate differently.
    swapped = img[:, [8, 1, 2, 3, 4, 5, 6, 7, 0]]
    assert not np.allclose(np.asarray(layer(x, swapped)), out, atol=1e-5)


def test_relation_network_with_select_heads_lets_the_question_point_at_each_pairs_objects(
        tmp_path):
    """select_heads: softmax pointers of the question at the pair's first and second object
    weight every pair unit, which also sees the pair's offset and distance; written out pair
    by pair."""
    x, img = _tokens(2, 3), _tokens(2, 9, seed=1)
    layer = RelationNetwork(HIDDEN, relation_dim=5, select_heads=2, key_dim=3, name="relations")
    out = np.asarray(run_layer_test(layer, (x, img), tmp_path,
                                    expected_output_shape=(2, 3, HIDDEN)))
    coords = grid_coordinates(9)
    objects = np.concatenate([img, np.broadcast_to(coords, (2, 9, 2))], -1)
    wa, ba = (np.asarray(w) for w in layer.first.weights)
    wb, wq = np.asarray(layer.second.kernel), np.asarray(layer.query.kernel)
    question = np.asarray(layer.norm(x))
    keys = (objects @ np.asarray(layer.keys.kernel)).reshape(2, 9, 2, 2, 3)    # (b, N, side, h, k)
    sel = (question @ np.asarray(layer.selectors.kernel)).reshape(2, 3, 2, 2, 3)  # (b, T, ...)
    scores = np.einsum("btshk,bnshk->bstnh", sel, keys) / np.sqrt(3)             # (b, 2, T, N, h)
    p = np.exp(scores - scores.max(3, keepdims=True))
    p /= p.sum(3, keepdims=True)
    geo = np.asarray(layer.geometry.kernel)
    heads = np.zeros((2, 3, 2, 5))                                                # (b, T, h, r)
    for i in range(9):
        for j in range(9):
            d = coords[j] - coords[i]
            pair = (objects[:, i] @ wa + ba + objects[:, j] @ wb
                    + np.concatenate([d, [np.hypot(*d)]]) @ geo)              # (b, r)
            g = np.maximum(pair[:, None] + question @ wq, 0)                   # (b, T, r)
            heads += (p[:, 0, :, i] * p[:, 1, :, j])[..., None] * g[:, :, None]
    mix_w, mix_b = (np.asarray(w) for w in layer.mix.weights)
    relations = heads.reshape(2, 3, 10) @ mix_w + mix_b
    f = np.asarray(layer.out(layer.hidden(relations.astype("float32"))))
    np.testing.assert_allclose(out, x + f, atol=1e-5)
    assert layer.get_config()["select_heads"] == 2
    # Off by default: the layer of the sixth round's measured runs.
    assert RelationNetwork(HIDDEN, relation_dim=5).get_config()["select_heads"] == 0


def test_grid_coordinates_lay_tokens_out_row_major_and_refuse_a_non_square():
    np.testing.assert_array_equal(grid_coordinates(4), [[-1, -1], [-1, 1], [1, -1], [1, 1]])
    np.testing.assert_array_equal(grid_coordinates(1), [[0, 0]])
    with pytest.raises(ValueError, match="5 tokens are not one"):
        grid_coordinates(5)
