"""Lidar encoder: shapes, padding and order invariance, gradients."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kaido.perception.config import LidarEncoderConfig
from kaido.perception.lidar_encoder import LidarEncoder, scatter_pillars
from kaido.perception.pillars import pillarize_batch


def cloud_batch(cfg: LidarEncoderConfig, b: int = 2, n: int = 3000, seed: int = 0):
    rng = np.random.default_rng(seed)
    pts = np.zeros((b, n, 4), np.float32)
    pts[..., 0] = rng.uniform(-16, 48, (b, n))
    pts[..., 1] = rng.uniform(-32, 32, (b, n))
    pts[..., 2] = rng.uniform(-0.5, 2.5, (b, n))
    pts[..., 3] = rng.uniform(0, 1, (b, n))
    counts = np.array([n - 7 * i for i in range(b)], np.int32)
    pb = pillarize_batch(
        pts, counts, cfg.grid, cfg.z_min, cfg.z_max, cfg.max_pillars, cfg.max_points
    )
    return (
        torch.from_numpy(pb.features),
        torch.from_numpy(pb.coords).long(),
        torch.from_numpy(pb.num_points).long(),
    )


def test_output_shape() -> None:
    cfg = LidarEncoderConfig()
    enc = LidarEncoder(cfg).eval()
    out = enc(*cloud_batch(cfg))
    assert out.shape == (2, cfg.out_channels, 32, 32)
    assert torch.isfinite(out).all()


def test_padding_and_pillar_order_do_not_change_the_output() -> None:
    cfg = LidarEncoderConfig()
    enc = LidarEncoder(cfg).eval()
    feats, coords, npts = cloud_batch(cfg, b=1)
    base = enc(feats, coords, npts)
    # reverse the pillar slots, and fill padded points and empty slots with garbage
    perm = torch.arange(feats.shape[1] - 1, -1, -1)
    f2, c2, n2 = feats[:, perm].clone(), coords[:, perm].clone(), npts[:, perm].clone()
    valid = torch.arange(cfg.max_points) < n2[..., None]
    f2[~valid] = 123.0
    c2[n2 == 0] = torch.tensor([5, 7])
    torch.testing.assert_close(enc(f2, c2, n2), base, rtol=1e-5, atol=1e-5)


def test_fewer_points_per_pillar_axis_is_accepted() -> None:
    cfg = LidarEncoderConfig()
    enc = LidarEncoder(cfg).eval()
    feats, coords, npts = cloud_batch(cfg, b=1)
    keep = 4
    out = enc(feats[:, :, :keep], coords, npts.clamp(max=keep))
    assert out.shape == (1, cfg.out_channels, 32, 32)


def test_scatter_places_pillars_at_their_cells() -> None:
    feats = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [9.0, 9.0]]])  # (B=1, P=3, C=2)
    coords = torch.tensor([[[0, 1], [2, 0], [0, 0]]])
    npts = torch.tensor([[1, 3, 0]])
    canvas = scatter_pillars(feats, coords, npts, 3, 2)
    want = torch.zeros(1, 2, 3, 2)
    want[0, :, 0, 1] = torch.tensor([1.0, 2.0])
    want[0, :, 2, 0] = torch.tensor([3.0, 4.0])
    torch.testing.assert_close(canvas, want)


def test_gradients_reach_every_parameter() -> None:
    cfg = LidarEncoderConfig()
    enc = LidarEncoder(cfg)
    enc(*cloud_batch(cfg)).square().mean().backward()
    for name, p in enc.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_bad_inputs_raise() -> None:
    cfg = LidarEncoderConfig()
    enc = LidarEncoder(cfg)
    feats, coords, npts = cloud_batch(cfg, b=1)
    with pytest.raises(ValueError, match="pillar_features must have shape"):
        enc(feats[..., :8], coords, npts)
    with pytest.raises(ValueError, match="pillar_points must have shape"):
        enc(feats, coords, npts[:, :-1])
    bad = coords.clone()
    bad[0, 0] = torch.tensor([64, 0])
    with pytest.raises(ValueError, match="pillar_coords must lie in the 64 x 64 grid"):
        enc(feats, bad, npts)
