"""Small building blocks shared by the perception modules (BEV CNN, conv + norm + ReLU).

Normalisation is :class:`torch.nn.GroupNorm` throughout: it has no batch statistics, so a
sample's output never depends on the other samples of its batch, and train and eval agree.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["BevCnn", "check_shape", "conv_norm_relu", "group_count"]


def group_count(channels: int) -> int:
    """Groups of the GroupNorm over ``channels``: the largest of 8, 4, 2, 1 that divides it."""
    for g in (8, 4, 2):
        if channels % g == 0:
            return g
    return 1


def conv_norm_relu(in_channels: int, out_channels: int, stride: int = 1) -> nn.Sequential:
    """3x3 convolution (padding 1, no bias) → GroupNorm → ReLU."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False),
        nn.GroupNorm(group_count(out_channels), out_channels),
        nn.ReLU(inplace=True),
    )


class BevCnn(nn.Module):
    """BEV CNN ``(B, C_in, H, W) → (B, C_out, H / s, W / s)``.

    ``log2(s)`` 3x3 stride-2 convs (one 3x3 stride-1 conv when ``s == 1``), one 3x3 conv at the
    output size, then a 1x1 projection (with bias) to ``out_channels``; each 3x3 conv is followed
    by GroupNorm and ReLU. Nothing runs at the full grid size but the first conv.
    """

    def __init__(self, in_channels: int, hidden_channels: int, out_channels: int, stride: int):
        super().__init__()
        if stride < 1 or stride & (stride - 1):
            raise ValueError(f"BevCnn: stride must be a power of two, got {stride}")
        layers: list[nn.Module] = []
        c = in_channels
        for _ in range(max(stride.bit_length() - 1, 1)):
            layers.append(conv_norm_relu(c, hidden_channels, stride=2 if stride > 1 else 1))
            c = hidden_channels
        layers.append(conv_norm_relu(hidden_channels, hidden_channels))
        layers.append(nn.Conv2d(hidden_channels, out_channels, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.net(x)
        return out


def check_shape(name: str, tensor: Tensor, shape: tuple[int | None, ...]) -> None:
    """ValueError naming ``name`` unless ``tensor`` has ``shape`` (None = any size)."""
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(tensor).__name__}")
    ok = tensor.dim() == len(shape) and all(
        want is None or got == want for got, want in zip(tensor.shape, shape, strict=True)
    )
    if not ok:
        want_s = ", ".join("?" if s is None else str(s) for s in shape)
        raise ValueError(f"{name} must have shape ({want_s}), got {tuple(tensor.shape)}")
