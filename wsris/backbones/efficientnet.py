"""The first three stages of EfficientNet-Lite0 (stride 8), in plain torch with timm's
parameter names (``conv_stem``, ``bn1``, ``blocks[:3]``): the ``efficientnet_lite0``
image stem of :mod:`wsris.backbones.stems`. As for the ViT, timm itself is not imported
at inference (see :mod:`wsris.backbones.vit`); ``tests/test_vit.py`` checks names, shapes
and outputs against timm.
"""

from __future__ import annotations

import torch
from torch import nn


class BatchNormAct2d(nn.BatchNorm2d):
    """Batch norm then an activation, one module (timm's keys: no extra parameters)."""

    def __init__(self, channels: int, act: bool = True) -> None:
        super().__init__(channels)
        self.drop = nn.Identity()
        self.act: nn.Module = nn.ReLU6(inplace=True) if act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.drop(super().forward(x)))


def _dw(channels: int, kernel: int, stride: int) -> nn.Conv2d:
    return nn.Conv2d(channels, channels, kernel, stride, padding=kernel // 2,
                     groups=channels, bias=False)


class DepthwiseSeparableConv(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv_dw = _dw(cin, 3, 1)
        self.bn1 = BatchNormAct2d(cin)
        self.aa = nn.Identity()
        self.se = nn.Identity()
        self.conv_pw = nn.Conv2d(cin, cout, 1, bias=False)
        self.bn2 = BatchNormAct2d(cout, act=False)
        self.drop_path = nn.Identity()
        self.has_skip = cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn2(self.conv_pw(self.se(self.aa(self.bn1(self.conv_dw(x))))))
        return self.drop_path(y) + x if self.has_skip else y


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int = 6) -> None:
        super().__init__()
        mid = cin * expand
        self.conv_pw = nn.Conv2d(cin, mid, 1, bias=False)
        self.bn1 = BatchNormAct2d(mid)
        self.conv_dw = _dw(mid, kernel, stride)
        self.bn2 = BatchNormAct2d(mid)
        self.aa = nn.Identity()
        self.se = nn.Identity()
        self.conv_pwl = nn.Conv2d(mid, cout, 1, bias=False)
        self.bn3 = BatchNormAct2d(cout, act=False)
        self.drop_path = nn.Identity()
        self.has_skip = cin == cout and stride == 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn1(self.conv_pw(x))
        y = self.bn3(self.conv_pwl(self.se(self.aa(self.bn2(self.conv_dw(y))))))
        return self.drop_path(y) + x if self.has_skip else y


def efficientnet_lite0_stride8() -> nn.Sequential:
    """``Sequential(conv_stem, bn1, blocks[0], blocks[1], blocks[2])`` of timm's
    ``efficientnet_lite0``: stride 8, 40 channels out."""
    net = nn.Sequential(
        nn.Conv2d(3, 32, 3, stride=2, padding=1, bias=False),
        BatchNormAct2d(32),
        nn.Sequential(DepthwiseSeparableConv(32, 16)),
        nn.Sequential(InvertedResidual(16, 24, 3, 2), InvertedResidual(24, 24, 3, 1)),
        nn.Sequential(InvertedResidual(24, 40, 5, 2), InvertedResidual(40, 40, 5, 1)),
    )
    # timm's EfficientNet initialisation for convolutions (normal, std sqrt(2 / fan_out))
    for module in net.modules():
        if isinstance(module, nn.Conv2d) and module.weight.device.type != "meta":
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
    return net
