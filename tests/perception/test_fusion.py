"""BEV fusion: shapes, missing modalities, errors."""

from __future__ import annotations

import pytest
import torch

from kaido.perception.config import FusionConfig
from kaido.perception.fusion import BevFusion

CFG = FusionConfig()


def test_shapes_and_missing_modality_is_zeros() -> None:
    fusion = BevFusion(CFG).eval()
    gen = torch.Generator().manual_seed(0)
    lidar = torch.randn(3, CFG.lidar_channels, 32, 32, generator=gen)
    camera = torch.randn(3, CFG.camera_channels, 32, 32, generator=gen)
    both = fusion(lidar, camera)
    assert both.shape == (3, CFG.out_channels, 32, 32)
    torch.testing.assert_close(fusion(lidar, None), fusion(lidar, torch.zeros_like(camera)))
    torch.testing.assert_close(fusion(None, camera), fusion(torch.zeros_like(lidar), camera))
    none = fusion(None, None, batch_size=2)
    torch.testing.assert_close(
        none, fusion(torch.zeros_like(lidar[:2]), torch.zeros_like(camera[:2]))
    )


def test_gradients_flow_to_both_inputs() -> None:
    fusion = BevFusion(CFG)
    lidar = torch.randn(2, CFG.lidar_channels, 32, 32, requires_grad=True)
    camera = torch.randn(2, CFG.camera_channels, 32, 32, requires_grad=True)
    fusion(lidar, camera).square().mean().backward()
    assert lidar.grad is not None and lidar.grad.abs().sum() > 0
    assert camera.grad is not None and camera.grad.abs().sum() > 0


def test_errors() -> None:
    fusion = BevFusion(CFG)
    with pytest.raises(ValueError, match="pass batch_size"):
        fusion(None, None)
    with pytest.raises(ValueError, match="camera_bev must have shape \\(2, 32, 32, 32\\)"):
        fusion(torch.zeros(2, 32, 32, 32), torch.zeros(2, 16, 32, 32))
    with pytest.raises(ValueError, match="lidar_bev must have shape \\(2, 32, 32, 32\\)"):
        fusion(torch.zeros(2, 32, 16, 16), None)
