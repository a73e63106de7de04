"""CLIP's modified ResNet (Radford et al. 2021) as TRIS uses it: the four stage maps.

Differences from torchvision's ResNet, as in CLIP: a stem of three 3x3 convolutions with
an average pool instead of a max pool, and strided blocks that average-pool before their
third convolution (and before the shortcut's 1x1 convolution) instead of striding.
CLIP's attention pool on top is left out: neither TRIS stage reads its output, and the
converter drops its weights by name.

Parameter names follow CLIP's ``visual.*`` layout so published weights load as they are.
"""

from __future__ import annotations

import torch
from torch import nn

EXPANSION = 4


class Bottleneck(nn.Module):
    """1x1 -> 3x3 -> (avg pool when strided) -> 1x1, with a pooled 1x1 shortcut."""

    def __init__(self, inplanes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * EXPANSION, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * EXPANSION)
        self.pool = nn.AvgPool2d(stride) if stride > 1 else nn.Identity()
        self.downsample: nn.Sequential | None = None
        if stride > 1 or inplanes != planes * EXPANSION:
            # index 0 and 1, the names CLIP's checkpoints use; the pool has no weights
            self.downsample = nn.Sequential(
                nn.Conv2d(inplanes, planes * EXPANSION, 1, bias=False),
                nn.BatchNorm2d(planes * EXPANSION),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = torch.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(self.pool(out)))
        shortcut = x if self.downsample is None else self.downsample(self.pool(x))
        return torch.relu(out + shortcut)


class ModifiedResNet(nn.Module):
    """Returns ``(c1, c2, c3, c4)`` at strides 4, 8, 16, 32 with ``4w, 8w, 16w, 32w``
    channels (``w`` = ``width``; 256, 512, 1024, 2048 for RN50)."""

    def __init__(self, layers: tuple[int, int, int, int], width: int = 64) -> None:
        super().__init__()
        half = width // 2
        self.conv1 = nn.Conv2d(3, half, 3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(half)
        self.conv2 = nn.Conv2d(half, half, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(half)
        self.conv3 = nn.Conv2d(half, width, 3, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(width)
        self.avgpool = nn.AvgPool2d(2)
        inplanes = width
        stages = []
        for i, blocks in enumerate(layers):
            planes = width * 2**i
            stage = [Bottleneck(inplanes, planes, stride=1 if i == 0 else 2)]
            inplanes = planes * EXPANSION
            stage += [Bottleneck(inplanes, planes) for _ in range(1, blocks)]
            stages.append(nn.Sequential(*stage))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages

    @property
    def channels(self) -> tuple[int, int, int, int]:
        w = self.conv3.out_channels
        return (w * 4, w * 8, w * 16, w * 32)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        x = x.to(self.conv1.weight.dtype)
        for conv, bn in ((self.conv1, self.bn1), (self.conv2, self.bn2), (self.conv3, self.bn3)):
            x = torch.relu(bn(conv(x)))
        x = self.avgpool(x)
        c1 = self.layer1(x)
        c2 = self.layer2(c1)
        c3 = self.layer3(c2)
        c4 = self.layer4(c3)
        return c1, c2, c3, c4
