"""Layout, index, reduction, normalisation and resampling kernels against numpy/torch."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from coremltools.converters.mil import Builder as mb

from orchestrator.errors import ArtifactError
from tests.mil.programs import build, close, rand, run, run1, t


def test_reshape_transpose_expand_squeeze_concat_split_stack():
    x = rand(2, 3, 4)
    got = run(build(lambda a: [
        mb.reshape(x=a, shape=[4, -1]), mb.transpose(x=a, perm=[2, 0, 1]),
        mb.expand_dims(x=a, axes=[0, -1]), mb.squeeze(x=mb.expand_dims(x=a, axes=[1]), axes=[1]),
        mb.concat(values=[a, a], axis=1), mb.concat(values=[a, mb.mul(x=a, y=2.0)], axis=1, interleave=True),
        *mb.split(x=a, split_sizes=[1, 3], axis=2), mb.stack(values=[a, a], axis=1),
    ], {"a": x.shape}), {"a": x})
    interleaved = np.stack([x, 2 * x], axis=2).reshape(2, 6, 4)
    want = [x.reshape(4, 6), x.transpose(2, 0, 1), x[None, ..., None], x, np.concatenate([x, x], 1), interleaved,
            x[:, :, :1], x[:, :, 1:], np.stack([x, x], 1)]
    for g, w in zip(got, want, strict=True):
        close(g, w)


def test_slice_by_index_masks_strides_and_squeeze():
    x = rand(4, 5, 6)
    got = run(build(lambda a: [
        mb.slice_by_index(x=a, begin=[1, 0, 0], end=[3, 5, 6]),
        mb.slice_by_index(x=a, begin=[0, 1, -1], end=[0, -1, 0], stride=[2, 2, -2],
                          begin_mask=[True, False, False], end_mask=[True, False, True]),
        mb.slice_by_index(x=a, begin=[0, 2, 0], end=[4, 3, 6], squeeze_mask=[False, True, False]),
        mb.slice_by_index(x=a, begin=[-1, 0, 0], end=[0, 5, 6], squeeze_mask=[True, False, False],
                          end_mask=[True, False, False]),
        mb.slice_by_size(x=a, begin=[1, 1, 2], size=[2, -1, 3]),
    ], {"a": x.shape}), {"a": x})
    want = [x[1:3], x[::2, 1:-1:2, -1::-2], x[:, 2, :], x[-1], x[1:3, 1:, 2:5]]
    for g, w in zip(got, want, strict=True):
        close(g, w)


def test_tile_pad_modes_flatten_reverse_pixel_shuffle():
    x = rand(1, 4, 3, 3)
    got = run(build(lambda a: [
        mb.tile(x=a, reps=[1, 1, 2, 1]), mb.pad(x=a, pad=[1, 2, 0, 1], mode="constant", constant_val=0.5),
        mb.pad(x=a, pad=[1, 1, 2, 2], mode="reflect"), mb.pad(x=a, pad=[0, 1, 1, 0], mode="replicate"),
        mb.flatten2d(x=a, axis=2), mb.reverse(x=a, axes=[1, 3]), mb.pixel_shuffle(x=a, upscale_factor=2),
    ], {"a": x.shape}), {"a": x})
    tx = t(x)
    want = [np.tile(x, (1, 1, 2, 1)), F.pad(tx, [0, 1, 1, 2], value=0.5), F.pad(tx, [2, 2, 1, 1], mode="reflect"),
            F.pad(tx, [1, 0, 0, 1], mode="replicate"), x.reshape(4, 9), x[:, ::-1, :, ::-1], F.pixel_shuffle(tx, 2)]
    for g, w in zip(got, want, strict=True):
        close(g, w.numpy() if isinstance(w, torch.Tensor) else w)


def test_gather_variants_and_out_of_range_indices():
    x = rand(5, 3, 4)
    ids = np.array([[4, 0], [1, -1]], dtype=np.int32)
    program = build(lambda a: [mb.gather(x=a, indices=ids, axis=0), mb.gather(x=a, indices=ids[1], axis=2),
                               mb.gather_along_axis(x=a, indices=np.zeros((5, 1, 4), np.int32), axis=1),
                               mb.gather_nd(x=a, indices=np.array([[0, 1], [4, 2]], np.int32))],
                    {"a": x.shape}, opset="iOS16")
    got = run(program, {"a": x})
    want = [x[[[4, 0], [1, 4]]], x[:, :, [1, 3]], x[:, :1, :], x[[0, 4], [1, 2]]]
    for g, w in zip(got, want, strict=True):
        close(g, w)
    table = build(lambda i: mb.gather(x=rand(10, 3), indices=i, axis=0), {"i": (1, 4)}, dtype="int32")
    with pytest.raises(ArtifactError, match=r"index 12 is outside \[0, 10\)"):
        run(table, {"i": np.array([[1, 2, 12, 3]], np.int32)})


def test_gather_with_a_scalar_index():
    x = rand(5, 3)
    vector = rand(7)
    got = run(build(lambda a, v: [mb.gather(x=a, indices=np.int32(2), axis=0),
                                  mb.gather(x=a, indices=np.int32(-1), axis=1),
                                  mb.gather(x=v, indices=np.int32(4), axis=0)],
                    {"a": x.shape, "v": vector.shape}, opset="iOS16"), {"a": x, "v": vector})
    for g, w in zip(got, [x[2], x[:, -1], vector[4]], strict=True):
        assert np.shape(g) == np.shape(w)
        close(g, w)


def test_one_hot_topk_argsort_cumsum_band_part():
    x = rand(3, 6)
    got = run(build(lambda a: [
        *mb.topk(x=a, k=2, axis=1), mb.argsort(x=a, axis=1, ascending=True),
        mb.cumsum(x=a, axis=1, exclusive=True), mb.cumsum(x=a, axis=1, reverse=True),
        mb.band_part(x=a, lower=1, upper=0),
        mb.one_hot(indices=np.array([0, 2, 1], np.int32), one_hot_vector_size=4, axis=0),
    ], {"a": x.shape}), {"a": x})
    values, indices = torch.topk(t(x), 2, dim=1)
    close(got[0], values)
    np.testing.assert_array_equal(got[1], indices.numpy().astype(np.int32))
    np.testing.assert_array_equal(got[2], np.argsort(x, axis=1, kind="stable"))
    close(got[3], np.cumsum(x, 1) - x, tol=1e-6)
    close(got[4], np.cumsum(x[:, ::-1], 1)[:, ::-1], tol=1e-6)
    close(got[5], np.triu(np.tril(x, 0), -1))
    np.testing.assert_array_equal(got[6], np.eye(4, dtype=np.int32)[[0, 2, 1]].T)


@pytest.mark.parametrize("op", ["reduce_sum", "reduce_mean", "reduce_max", "reduce_min", "reduce_prod",
                                "reduce_sum_square", "reduce_l1_norm", "reduce_l2_norm", "reduce_log_sum_exp"])
@pytest.mark.parametrize(("axes", "keep"), [([1], True), ([0, 2], False), (None, False)])
def test_reductions(op, axes, keep):
    x = rand(3, 4, 5, low=0.2, high=1.5)
    np_axes = None if axes is None else tuple(axes)
    reference = {
        "reduce_sum": np.sum, "reduce_mean": np.mean, "reduce_max": np.max, "reduce_min": np.min,
        "reduce_prod": np.prod, "reduce_sum_square": lambda v, **k: np.sum(v * v, **k),
        "reduce_l1_norm": lambda v, **k: np.sum(np.abs(v), **k),
        "reduce_l2_norm": lambda v, **k: np.sqrt(np.sum(v * v, **k)),
        "reduce_log_sum_exp": lambda v, **k: np.log(np.sum(np.exp(v), **k)),
    }[op]
    kwargs = {"keep_dims": keep} if axes is None else {"axes": axes, "keep_dims": keep}
    got = run1(lambda a: getattr(mb, op)(x=a, **kwargs), a=x)
    close(got, np.asarray(reference(x, axis=np_axes, keepdims=keep), dtype=np.float32), tol=1e-5)


def test_argmax_argmin():
    x = rand(3, 7)
    got = run(build(lambda a: [mb.reduce_argmax(x=a, axis=1), mb.reduce_argmin(x=a, axis=0, keep_dims=True)],
                    {"a": x.shape}), {"a": x})
    np.testing.assert_array_equal(got[0], x.argmax(1))
    np.testing.assert_array_equal(got[1], x.argmin(0)[None])


def test_norms():
    x = rand(2, 6, 4, 5)
    g, b = rand(6, seed=1), rand(6, seed=2)
    gl, bl = rand(5, seed=3), rand(5, seed=4)
    mean, var = rand(6, seed=5), rand(6, seed=6, low=0.5, high=2.0)
    got = run(build(lambda a: [
        mb.layer_norm(x=a, axes=[-1], gamma=gl, beta=bl, epsilon=1e-5),
        mb.layer_norm(x=a, axes=[1, 3], epsilon=1e-3),
        mb.instance_norm(x=a, gamma=g, beta=b, epsilon=1e-5),
        mb.batch_norm(x=a, mean=mean, variance=var, gamma=g, beta=b, epsilon=1e-3),
        mb.l2_norm(x=a, epsilon=1e-6),
    ], {"a": x.shape}), {"a": x})
    tx = t(x)
    m = tx.mean(dim=(1, 3), keepdim=True)
    v = tx.var(dim=(1, 3), keepdim=True, unbiased=False)
    flat = tx.reshape(2, -1)
    want = [F.layer_norm(tx, [5], t(gl), t(bl)), (tx - m) / torch.sqrt(v + 1e-3),
            F.instance_norm(tx, weight=t(g), bias=t(b)),
            F.batch_norm(tx, t(mean), t(var), t(g), t(b), eps=1e-3),
            (flat / torch.sqrt((flat * flat).sum(1, keepdim=True) + 1e-6)).reshape(tx.shape)]
    for got_one, w in zip(got, want, strict=True):
        close(got_one, w, tol=1e-4)


def test_resampling_matches_torch_interpolate():
    x = rand(1, 2, 5, 4)
    got = run(build(lambda a: [
        mb.upsample_nearest_neighbor(x=a, scale_factor_height=2, scale_factor_width=3),
        mb.upsample_bilinear(x=a, scale_factor_height=2.0, scale_factor_width=2.0, align_corners=False),
        mb.upsample_bilinear(x=a, scale_factor_height=2.0, scale_factor_width=3.0, align_corners=True),
        mb.resize_bilinear(x=a, target_size_height=7, target_size_width=6, sampling_mode="ALIGN_CORNERS"),
        mb.resize_nearest_neighbor(x=a, target_size_height=10, target_size_width=8),
    ], {"a": x.shape}), {"a": x})
    tx = t(x)
    want = [F.interpolate(tx, scale_factor=(2, 3), mode="nearest"),
            F.interpolate(tx, scale_factor=2, mode="bilinear", align_corners=False),
            F.interpolate(tx, size=(10, 12), mode="bilinear", align_corners=True),
            F.interpolate(tx, size=(7, 6), mode="bilinear", align_corners=True),
            F.interpolate(tx, size=(10, 8), mode="nearest")]
    for g, w in zip(got, want, strict=True):
        close(g, w, tol=1e-5)
