"""Segmentation heads on the frozen Vanishing Depth features (paper.md section 6, proposal 16).

Both heads read ``VDFeatures.maps``: the four fused token maps (B, D, h, w), shallowest fusion
block first, h = H / p. The encoder and the adapter stay frozen; only the head trains.

- ``linear``: DINOv2's linear segmentation probe: BatchNorm + 1x1 convolution over the four
  concatenated maps; logits on the patch grid (B, K, h, w).
- ``fpn``: a light feature pyramid in the spirit of detectron2's ``SimpleFeaturePyramid``: each
  map is projected to ``channels`` (1x1 conv + BN) and resized to strides p/4, p/2, p and 2p
  (shallowest map finest), merged top-down by upsample-and-add, smoothed by a 3x3 conv-BN-ReLU
  and classified by a 1x1 conv; logits at (B, K, 4h, 4w).

Logits are bilinearly upsampled to the label size for the loss (:func:`upsample_logits`); the
exported model emits them on the head's own grid and the node resamples them to the camera.
"""

from typing import Any, Dict, Sequence

import torch
from torch import nn
import torch.nn.functional as F

SEG_HEAD_KINDS = ('linear', 'fpn')


class LinearSegHead(nn.Module):
    """BN + 1x1 conv over the concatenated token maps (DINOv2 linear probe).

    Attributes:
        num_classes: K.
        config: Constructor arguments (saved with the weights).
    """

    def __init__(self, feature_dim: int, num_classes: int, num_maps: int = 4):
        """Create the head.

        Args:
            feature_dim: Token width D.
            num_classes: Number of classes K.
            num_maps: Maps concatenated (4 fusion blocks).
        """
        super().__init__()
        self.num_classes = int(num_classes)
        self.config = {'kind': 'linear', 'feature_dim': int(feature_dim),
                       'num_classes': self.num_classes, 'num_maps': int(num_maps)}
        width = feature_dim * num_maps
        self.norm = nn.BatchNorm2d(width)
        self.classifier = nn.Conv2d(width, num_classes, kernel_size=1)

    def forward(self, maps: Sequence[torch.Tensor]) -> torch.Tensor:
        """Return logits (B, K, h, w) for maps [num_maps x (B, D, h, w)]."""
        _check_maps(maps, self.config)
        x = torch.cat(list(maps), dim=1)  # (B, num_maps * D, h, w)
        return self.classifier(self.norm(x))  # (B, K, h, w)


class FPNSegHead(nn.Module):
    """A light top-down feature pyramid over the token maps.

    Attributes:
        num_classes: K.
        config: Constructor arguments (saved with the weights).
    """

    def __init__(self, feature_dim: int, num_classes: int, num_maps: int = 4,
                 channels: int = 64):
        """Create the head.

        Args:
            feature_dim: Token width D.
            num_classes: Number of classes K.
            num_maps: Maps in the pyramid (4 fusion blocks); map i gets stride p * 2**i / 4.
            channels: Pyramid width.
        """
        super().__init__()
        self.num_classes = int(num_classes)
        self.config = {'kind': 'fpn', 'feature_dim': int(feature_dim),
                       'num_classes': self.num_classes, 'num_maps': int(num_maps),
                       'channels': int(channels)}
        self.lateral = nn.ModuleList(
            nn.Sequential(nn.Conv2d(feature_dim, channels, 1, bias=False),
                          nn.BatchNorm2d(channels))
            for _ in range(num_maps))
        self.smooth = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1, bias=False),
                                    nn.BatchNorm2d(channels), nn.ReLU(inplace=True))
        self.classifier = nn.Conv2d(channels, num_classes, kernel_size=1)

    def forward(self, maps: Sequence[torch.Tensor]) -> torch.Tensor:
        """Return logits (B, K, 4h, 4w) for maps [num_maps x (B, D, h, w)]."""
        _check_maps(maps, self.config)
        height, width = maps[0].shape[-2:]
        levels = []
        for index, (lateral, feature) in enumerate(zip(self.lateral, maps)):
            size = (max(1, (4 * height) >> index), max(1, (4 * width) >> index))
            levels.append(F.interpolate(lateral(feature), size=size, mode='bilinear',
                                        align_corners=False))  # (B, C, 4h / 2**i, 4w / 2**i)
        merged = levels[-1]
        for level in reversed(levels[:-1]):
            merged = level + F.interpolate(merged, size=level.shape[-2:], mode='bilinear',
                                           align_corners=False)  # (B, C, h_i, w_i)
        return self.classifier(self.smooth(merged))  # (B, K, 4h, 4w)


def _check_maps(maps: Sequence[torch.Tensor], config: Dict[str, Any]) -> None:
    """Raise ValueError unless ``maps`` holds ``num_maps`` (B, D, h, w) tensors of one size."""
    if len(maps) != config['num_maps']:
        raise ValueError(f'{config["kind"]} head expects {config["num_maps"]} maps, '
                         f'got {len(maps)}')
    for feature in maps:
        if feature.dim() != 4 or feature.shape[1] != config['feature_dim'] or \
                feature.shape[-2:] != maps[0].shape[-2:]:
            raise ValueError(
                f'{config["kind"]} head expects maps (B, {config["feature_dim"]}, h, w) of one '
                f'size, got {[tuple(m.shape) for m in maps]}')


def build_seg_head(kind: str, feature_dim: int, num_classes: int, num_maps: int = 4,
                   **kwargs) -> nn.Module:
    """Create a segmentation head.

    Args:
        kind: ``linear`` or ``fpn``.
        feature_dim: Token width D.
        num_classes: Number of classes K (>= 2).
        num_maps: Token maps the head reads.
        **kwargs: Head-specific arguments (``channels`` for ``fpn``).

    Returns:
        The head; ``head.config`` rebuilds it with ``build_seg_head(**head.config)``.

    Raises:
        ValueError: Unknown kind, fewer than 2 classes or arguments the head does not take.
    """
    if kind not in SEG_HEAD_KINDS:
        raise ValueError(f'unknown segmentation head {kind!r}, expected one of '
                         f'{list(SEG_HEAD_KINDS)}')
    if num_classes < 2:
        raise ValueError(f'a segmentation head needs at least 2 classes, got {num_classes}')
    if kind == 'linear':
        if kwargs:
            raise ValueError(f'linear head takes no arguments {sorted(kwargs)}')
        return LinearSegHead(feature_dim, num_classes, num_maps)
    return FPNSegHead(feature_dim, num_classes, num_maps, **kwargs)


def upsample_logits(logits: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Bilinearly resize logits (B, K, h, w) to ``size`` (H, W), as for the loss."""
    return F.interpolate(logits, size=tuple(size), mode='bilinear',
                         align_corners=False)  # (B, K, H, W)
