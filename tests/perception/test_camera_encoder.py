"""Camera encoder: lift-splat geometry against the real rig, masking, shapes, gradients."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from kaido.perception.camera_encoder import (
    CameraEncoder,
    bev_cell_index,
    depth_bin_centres,
    frustum_points,
    lift_splat,
)
from kaido.perception.config import CameraEncoderConfig
from kaido.scene.raster import world_to_pixel
from kaido.scene.sensors import CameraSpec, load_sensor_rig

ROOT = Path(__file__).resolve().parents[2]
CFG = CameraEncoderConfig()


def resized_front_camera(cfg: CameraEncoderConfig = CFG) -> CameraSpec:
    """The default rig's front camera with intrinsics scaled to the model's image size."""
    cam = load_sensor_rig(ROOT / "configs" / "sensors" / "default.yaml").camera("front")
    sx = cfg.image_width / cam.width
    sy = cfg.image_height / cam.height
    return CameraSpec(
        cam.name,
        cfg.image_width,
        cfg.image_height,
        cam.fx * sx,
        cam.fy * sy,
        cam.cx * sx,
        cam.cy * sy,
        cam.extrinsics,
    )


def calibration(
    cam: CameraSpec, b: int, c: int, dtype: torch.dtype = torch.float32
) -> tuple[torch.Tensor, torch.Tensor]:
    k = torch.tensor(cam.intrinsic_matrix(), dtype=dtype)
    t = torch.tensor(cam.optical_to_ego().as_matrix(), dtype=dtype)
    return k.expand(b, c, 3, 3).clone(), t.expand(b, c, 4, 4).clone()


def feature_pixel_centres(cfg: CameraEncoderConfig) -> np.ndarray:
    """``(h', w', 2)`` image (u, v) of the feature cells' centres."""
    hf, wf = cfg.feature_shape
    s = cfg.image_stride
    v, u = np.meshgrid((np.arange(hf) + 0.5) * s, (np.arange(wf) + 0.5) * s, indexing="ij")
    return np.stack([u, v], axis=-1)


def test_frustum_points_match_the_rig_camera_unproject_and_project_back() -> None:
    cam = resized_front_camera()
    k, t = calibration(cam, 1, 1, torch.float64)
    depths = depth_bin_centres(CFG)
    s = float(CFG.image_stride)
    frustum = frustum_points(k, t, depths.double(), CFG.feature_shape, (s, s))
    pts = frustum[0, 0].numpy()  # (D, h', w', 3)
    uv = feature_pixel_centres(CFG)
    d = depths.double().numpy()
    uv_all = np.broadcast_to(uv, (len(d), *uv.shape)).reshape(-1, 2)
    d_all = np.broadcast_to(d[:, None, None], pts.shape[:3]).reshape(-1)
    want = cam.unproject(uv_all, d_all)
    np.testing.assert_allclose(pts.reshape(-1, 3), want, atol=1e-9)
    uv_back, depth_back, valid = cam.project(pts.reshape(-1, 3))
    assert valid.all()
    np.testing.assert_allclose(uv_back, uv_all, atol=1e-6)
    np.testing.assert_allclose(depth_back, d_all, atol=1e-9)
    # the optical axis points forward in the ego frame: depth grows with ego x
    assert (np.diff(pts[:, 0, 0, 0]) > 0).all()


def test_bev_cell_index_follows_the_raster_convention() -> None:
    grid = CFG.grid
    rng = np.random.default_rng(0)
    xyz = np.column_stack(
        [rng.uniform(-20, 52, 500), rng.uniform(-36, 36, 500), rng.uniform(-3, 5, 500)]
    )
    flat, valid = bev_cell_index(torch.tensor(xyz), grid, CFG.z_min, CFG.z_max)
    rc = np.floor(world_to_pixel(xyz[:, :2], [0.0, 0.0, 0.0], grid) + 0.5).astype(int)
    inside = (
        (rc[:, 0] >= 0)
        & (rc[:, 0] < grid.height)
        & (rc[:, 1] >= 0)
        & (rc[:, 1] < grid.width)
        & (xyz[:, 2] >= CFG.z_min)
        & (xyz[:, 2] < CFG.z_max)
    )
    np.testing.assert_array_equal(valid.numpy(), inside)
    np.testing.assert_array_equal(flat.numpy()[inside], (rc[:, 0] * grid.width + rc[:, 1])[inside])
    assert (flat.numpy()[~inside] == 0).all()


def test_lidar_point_lifts_into_its_own_bev_cell_with_one_hot_depth() -> None:
    """Points seen by the camera at a feature cell's centre pixel, at a depth-bin centre: with
    depth one-hot at that bin, the lifted feature lands in the point's own BEV cell."""
    cam = resized_front_camera()
    grid = CFG.grid
    hf, wf = CFG.feature_shape
    depths = depth_bin_centres(CFG).double()
    rng = np.random.default_rng(1)
    uv_grid = feature_pixel_centres(CFG)
    chosen: list[tuple[tuple[int, int], int, np.ndarray, np.ndarray]] = []
    while len(chosen) < 12:
        i, j, kbin = int(rng.integers(hf)), int(rng.integers(wf)), int(rng.integers(len(depths)))
        p = cam.unproject(uv_grid[i, j][None], depths[kbin : kbin + 1].numpy())[0]
        rc = np.floor(world_to_pixel(p[None, :2], [0.0, 0.0, 0.0], grid)[0] + 0.5).astype(int)
        on_grid = 0 <= rc[0] < grid.height and 0 <= rc[1] < grid.width
        if on_grid and CFG.z_min <= p[2] < CFG.z_max and (i, j) not in [c[0] for c in chosen]:
            chosen.append(((i, j), kbin, p, rc))
    # the lidar points project into the camera at the chosen feature cell, at their bin depth
    pts = np.array([c[2] for c in chosen])
    uv, depth, valid = cam.project(pts)
    assert valid.all()
    s = CFG.image_stride
    np.testing.assert_array_equal(np.floor(uv[:, ::-1] / s).astype(int), [c[0] for c in chosen])
    np.testing.assert_allclose(depth, [depths[c[1]].item() for c in chosen], atol=1e-9)

    n = len(chosen)
    probs = torch.zeros(1, 1, len(depths), hf, wf, dtype=torch.float64)
    context = torch.zeros(1, 1, n, hf, wf, dtype=torch.float64)
    for ch, ((i, j), kbin, _, _) in enumerate(chosen):
        probs[0, 0, kbin, i, j] = 1.0
        context[0, 0, ch, i, j] = 1.0
    k, t = calibration(cam, 1, 1, torch.float64)
    bev = lift_splat(
        probs,
        context,
        k,
        t,
        torch.ones(1, 1, dtype=torch.bool),
        depths,
        (float(s), float(s)),
        grid,
        CFG.z_min,
        CFG.z_max,
    )
    assert bev.shape == (1, n, grid.height, grid.width)
    for ch, (_, _, _, rc) in enumerate(chosen):
        nz = torch.nonzero(bev[0, ch]).tolist()
        assert nz == [[int(rc[0]), int(rc[1])]]
        assert bev[0, ch, rc[0], rc[1]].item() == pytest.approx(1.0)


def test_sum_pooling_conserves_mass_of_points_on_the_grid() -> None:
    cam = resized_front_camera()
    k, t = calibration(cam, 2, 1)
    hf, wf = CFG.feature_shape
    gen = torch.Generator().manual_seed(0)
    probs = torch.rand(2, 1, CFG.depth_bins, hf, wf, generator=gen, dtype=torch.float64)
    context = torch.ones(2, 1, 1, hf, wf, dtype=torch.float64)
    depths = depth_bin_centres(CFG).double()
    s = float(CFG.image_stride)
    mask = torch.ones(2, 1, dtype=torch.bool)
    bev = lift_splat(probs, context, k.double(), t.double(), mask, depths, (s, s), CFG.grid, -9, 9)
    pts = frustum_points(k.double(), t.double(), depths, (hf, wf), (s, s))
    _, valid = bev_cell_index(pts, CFG.grid, -9, 9)
    torch.testing.assert_close(bev.sum(dim=(1, 2, 3)), (probs * valid).sum(dim=(1, 2, 3, 4)))


def encoder_inputs(c: int = 2, b: int = 2, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    images = torch.rand(b, c, 3, CFG.image_height, CFG.image_width, generator=gen)
    k, t = calibration(resized_front_camera(), b, c)
    return images, k, t


def test_output_shape_and_determinism() -> None:
    enc = CameraEncoder(CFG).eval()
    images, k, t = encoder_inputs()
    mask = torch.ones(2, 2, dtype=torch.bool)
    out = enc(images, k, t, mask)
    assert out.shape == (2, CFG.out_channels, 32, 32)
    assert torch.equal(out, enc(images, k, t, mask))


def test_masked_camera_equals_camera_absent() -> None:
    enc = CameraEncoder(CFG).eval()
    images, k, t = encoder_inputs(c=2)
    # a second camera looking backwards; absent in sample 0, present in sample 1
    t[:, 1, :3, :3] = torch.diag(torch.tensor([-1.0, -1.0, 1.0])) @ t[:, 1, :3, :3]
    mask = torch.tensor([[True, False], [True, True]])
    garbage = images.clone()
    garbage[0, 1] = float("nan")
    k_bad, t_bad = k.clone(), t.clone()
    k_bad[0, 1] = 0.0  # absent cameras may carry zero calibration
    t_bad[0, 1] = 0.0
    both = enc(garbage, k_bad, t_bad, mask)
    alone = enc(images[:, :1], k[:, :1], t[:, :1], torch.ones(2, 1, dtype=torch.bool))
    assert torch.isfinite(both).all()
    # equal up to float rounding (the image CNN sees batches of 4 and 2 images)
    torch.testing.assert_close(both[0], alone[0], rtol=1e-4, atol=1e-4)
    assert (both[1] - alone[1]).abs().max() > 1e-2  # the present second camera counts


def test_all_cameras_masked_gives_zero_bev() -> None:
    enc = CameraEncoder(CFG).eval()
    images, k, t = encoder_inputs(c=2)
    mask = torch.tensor([[False, False], [True, False]])
    out = enc(images, k, t, mask)
    assert torch.equal(out[0], torch.zeros_like(out[0]))
    assert out[1].abs().sum() > 0


def test_gradients_reach_every_parameter() -> None:
    enc = CameraEncoder(CFG)
    images, k, t = encoder_inputs(c=1)
    enc(images, k, t, torch.ones(2, 1, dtype=torch.bool)).square().mean().backward()
    for name, p in enc.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_bad_inputs_raise() -> None:
    enc = CameraEncoder(CFG)
    images, k, t = encoder_inputs(c=1)
    mask = torch.ones(2, 1, dtype=torch.bool)
    with pytest.raises(ValueError, match="images must have shape \\(\\?, \\?, 3, 96, 160\\)"):
        enc(images[..., :80], k, t, mask)
    with pytest.raises(ValueError, match="camera mask must be bool"):
        enc(images, k, t, mask.float())
    with pytest.raises(ValueError, match="camera_to_ego must have shape \\(2, 1, 4, 4\\)"):
        enc(images, k, t[:, :, :3], mask)
