"""The tiny perception end to end: sizes, one training step on sample-like data, learning,
import hygiene."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import torch
from torch import nn

from kaido.logs.sample import BevClass, BoxField
from kaido.perception.camera_encoder import CameraEncoder
from kaido.perception.config import PerceptionConfig
from kaido.perception.detection import (
    DetectionHead,
    DetectionOutput,
    decode_detections,
    detection_loss,
    detection_targets,
)
from kaido.perception.fusion import BevFusion
from kaido.perception.lidar_encoder import LidarEncoder
from kaido.perception.pillars import pillarize_batch
from kaido.perception.segmentation import SegmentationHead, segmentation_loss

CFG = PerceptionConfig()


class Perception(nn.Module):
    def __init__(self, cfg: PerceptionConfig) -> None:
        super().__init__()
        self.lidar = LidarEncoder(cfg.lidar)
        self.camera = CameraEncoder(cfg.camera)
        self.fusion = BevFusion(cfg.fusion)
        self.detection = DetectionHead(cfg.detection)
        self.segmentation = SegmentationHead(cfg.segmentation)

    def forward(self, batch: dict[str, torch.Tensor]) -> tuple[DetectionOutput, torch.Tensor]:
        lidar = self.lidar(batch["pillar_features"], batch["pillar_coords"], batch["pillar_points"])
        camera = self.camera(
            batch["camera_images"].float() / 255.0,
            batch["camera_intrinsics"],
            batch["camera_to_ego"],
            batch["camera_mask"],
        )
        fused = self.fusion(lidar, camera)
        return self.detection(fused), self.segmentation(fused)


def sample_batch(b: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """A batch shaped like the dataset's: a ground plane and box-shaped clusters of points."""
    rng = np.random.default_rng(seed)
    grid = CFG.grid
    n, m = 4096, 8
    points = np.zeros((b, n, 4), np.float16)
    boxes = np.zeros((b, m, 7), np.float32)
    box_class = np.full((b, m), -1, np.int64)
    box_mask = np.zeros((b, m), bool)
    sem = np.zeros((b, 4, grid.height, grid.width), np.uint8)
    for i in range(b):
        k = 4
        boxes[i, :k, BoxField.X] = rng.uniform(-10, 40, k)
        boxes[i, :k, BoxField.Y] = rng.uniform(-25, 25, k)
        boxes[i, :k, BoxField.LENGTH] = 4.5
        boxes[i, :k, BoxField.WIDTH] = 2.0
        box_class[i, :k] = 0
        box_mask[i, :k] = True
        ground = np.column_stack(
            [rng.uniform(-16, 48, n // 2), rng.uniform(-32, 32, n // 2), np.zeros(n // 2)]
        )
        obj = np.repeat(boxes[i, :k, :2], n // 2 // k, axis=0) + rng.uniform(-1.5, 1.5, (n // 2, 2))
        obj = np.column_stack([obj, rng.uniform(0.3, 1.6, len(obj))])
        xyz = np.concatenate([ground, obj])[rng.permutation(n)]
        points[i, :, :3] = xyz
        points[i, :, 3] = 0.5
        for x, y in boxes[i, :k, :2]:
            r = int(grid.origin_row - x)
            c = int(grid.origin_col - y)
            sem[i, BevClass.VEHICLE, max(r - 2, 0) : r + 2, max(c - 1, 0) : c + 1] = 1
        sem[i, BevClass.DRIVABLE, :, 24:40] = 1
    pb = pillarize_batch(
        points,
        np.full(b, n, np.int32),
        grid,
        CFG.lidar.z_min,
        CFG.lidar.z_max,
        CFG.lidar.max_pillars,
        CFG.lidar.max_points,
    )
    cam = CFG.camera
    intrinsics = torch.tensor([[80.0, 0.0, 80.0], [0.0, 85.3, 48.0], [0.0, 0.0, 1.0]])
    t = torch.eye(4)
    t[:3, :3] = torch.tensor([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
    t[:3, 3] = torch.tensor([1.5, 0.0, 1.6])
    gen = torch.Generator().manual_seed(seed)
    return {
        "pillar_features": torch.from_numpy(pb.features),
        "pillar_coords": torch.from_numpy(pb.coords).long(),
        "pillar_points": torch.from_numpy(pb.num_points).long(),
        "camera_images": torch.randint(
            0, 256, (b, 1, 3, cam.image_height, cam.image_width), generator=gen
        ).to(torch.uint8),
        "camera_intrinsics": intrinsics.expand(b, 1, 3, 3).clone(),
        "camera_to_ego": t.expand(b, 1, 4, 4).clone(),
        "camera_mask": torch.ones(b, 1, dtype=torch.bool),
        "boxes": torch.from_numpy(boxes),
        "box_class": torch.from_numpy(box_class),
        "box_mask": torch.from_numpy(box_mask),
        "bev_semantics": torch.from_numpy(sem),
    }


def losses(model: Perception, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    det, seg = model(batch)
    targets = detection_targets(
        batch["boxes"], batch["box_class"], batch["box_mask"], CFG.detection
    )
    return (
        detection_loss(det, targets, CFG.detection)["total"]
        + segmentation_loss(seg, batch["bev_semantics"], CFG.segmentation)["total"]
    )


def test_tiny_sizes() -> None:
    model = Perception(CFG)
    counts = {
        name: sum(p.numel() for p in child.parameters()) for name, child in model.named_children()
    }
    total = sum(counts.values())
    assert 100_000 < total < 400_000, counts
    assert all(c > 1000 for c in counts.values()), counts


def test_batch_of_eight_forward_backward_and_decode() -> None:
    torch.manual_seed(0)
    model = Perception(CFG)
    batch = sample_batch(8)
    loss = losses(model, batch)
    assert torch.isfinite(loss)
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name
    det, seg = model(batch)
    assert seg.shape == (8, 4, 64, 64)
    decoded = decode_detections(det.heatmap, det.regression, CFG.detection)
    assert len(decoded) == 8
    for boxes, scores, classes in decoded:
        assert boxes.shape[1] == 7 and len(scores) == len(classes) <= CFG.detection.max_detections


def test_a_few_steps_lower_the_loss() -> None:
    torch.manual_seed(0)
    model = Perception(CFG)
    batch = sample_batch(2, seed=3)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = losses(model, batch).item()
    for _ in range(8):
        opt.zero_grad()
        losses(model, batch).backward()
        opt.step()
    assert losses(model, batch).item() < 0.5 * first


def test_perception_imports_neither_the_simulator_nor_carla() -> None:
    code = (
        "import sys\n"
        "import kaido.perception.camera_encoder, kaido.perception.config, "
        "kaido.perception.detection, kaido.perception.fusion, kaido.perception.layers, "
        "kaido.perception.lidar_encoder, kaido.perception.pillars, "
        "kaido.perception.segmentation\n"
        "bad = sorted(m for m in sys.modules if m == 'carla' or m.startswith('carla.') "
        "or m.startswith('kaido.simulation'))\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
