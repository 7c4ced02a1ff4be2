"""Dense matching descriptors on the frozen Vanishing Depth features, and their loss.

The head reads the four fused token maps ``VDFeatures.maps`` (B, D, h, w) through the light
feature pyramid of the segmentation heads (``FPNSegHead``, at 4h x 4w), and, since a 14-pixel
patch token cannot place a corner to a pixel, a small convolutional stem on the model's RGB
input (two stride-2 3x3 conv-BN-ReLU, at H / 4), resized to 4h x 4w. Both are concatenated,
mixed by a 3x3 conv-BN-ReLU and projected by a 1x1 conv to ``dim`` channels, L2-normalised
per pixel: descriptors (B, dim, 4h, 4w), 36 x 48 for the 126 x 168 input (>= a quarter of the
input resolution). Only the head trains; the encoder and adapter stay frozen.

Loss (``info_nce_loss``): for a point of frame A with a visible correspondence in B, the
positive is B's descriptor map sampled bilinearly at the reprojected position, the negatives
are every cell of B farther than ``exclusion_cells`` from it (InfoNCE over the whole map, so
the hardest negatives are always in the denominator), temperature ``temperature``.
Grid coordinates: cell (i, j) of an (h', w') map over an (H, W) image has its centre at camera
pixel ``((j + 0.5) W / w' - 0.5, (i + 0.5) H / h' - 0.5)``.
"""

from typing import Any, Dict, Sequence

import torch
from torch import nn
import torch.nn.functional as F

from training.models.heads import FPNSegHead

TEMPERATURE = 0.07  # InfoNCE softmax temperature the descriptors train with by default


def _conv_bn_relu(in_channels: int, out_channels: int, stride: int = 1) -> nn.Sequential:
    """3x3 conv (no bias) + BatchNorm + ReLU."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True))


class DescriptorHead(nn.Module):
    """Token pyramid + RGB stem -> L2-normalised dense descriptors.

    Attributes:
        dim: Descriptor width.
        config: Constructor arguments (saved with the weights).
    """

    def __init__(self, feature_dim: int, dim: int = 128, channels: int = 64,
                 stem_channels: int = 32, num_maps: int = 4, use_rgb: bool = True):
        """Create the head.

        Args:
            feature_dim: Token width D.
            dim: Descriptor width.
            channels: Width of the token pyramid and of the stem's output.
            stem_channels: Width of the stem's first convolution.
            num_maps: Token maps read (4 fusion blocks).
            use_rgb: Add the RGB stem (False: tokens only).
        """
        super().__init__()
        self.dim = int(dim)
        self.config = {'feature_dim': int(feature_dim), 'dim': self.dim,
                       'channels': int(channels), 'stem_channels': int(stem_channels),
                       'num_maps': int(num_maps), 'use_rgb': bool(use_rgb)}
        self.tokens = FPNSegHead(feature_dim, channels, num_maps, channels)
        self.stem = nn.Sequential(
            _conv_bn_relu(3, stem_channels, 2), _conv_bn_relu(stem_channels, channels, 2),
            _conv_bn_relu(channels, channels)) if use_rgb else None
        mixed = 2 * channels if use_rgb else channels
        self.mix = _conv_bn_relu(mixed, mixed)
        self.project = nn.Conv2d(mixed, self.dim, kernel_size=1)

    def forward(self, maps: Sequence[torch.Tensor], rgb: torch.Tensor) -> torch.Tensor:
        """Return unit descriptors (B, dim, 4h, 4w).

        Args:
            maps: [num_maps x (B, D, h, w)] fused token maps.
            rgb: (B, 3, H, W) model input in [0, 1] (unused without the stem).
        """
        x = self.tokens(maps)  # (B, C, 4h, 4w)
        if self.stem is not None:
            stem = self.stem(rgb - 0.5)  # (B, C, H / 4, W / 4)
            stem = F.interpolate(stem, size=x.shape[-2:], mode='bilinear',
                                 align_corners=False)  # (B, C, 4h, 4w)
            x = torch.cat([x, stem], dim=1)  # (B, 2C, 4h, 4w)
        x = self.project(self.mix(x))  # (B, dim, 4h, 4w)
        return F.normalize(x, dim=1, eps=1e-12)


def build_descriptor_head(config: Dict[str, Any]) -> DescriptorHead:
    """Rebuild a head from its ``config``."""
    return DescriptorHead(**config)


def pixels_to_grid(xy: torch.Tensor, image_size: Sequence[int],
                   grid_size: Sequence[int]) -> torch.Tensor:
    """Camera pixels (N, 2) -> continuous grid coordinates (N, 2) of an (h', w') map."""
    height, width = image_size
    grid_h, grid_w = grid_size
    scale = xy.new_tensor([grid_w / width, grid_h / height])
    return (xy + 0.5) * scale - 0.5


def sample_descriptors(descriptors: torch.Tensor, grid_xy: torch.Tensor) -> torch.Tensor:
    """Bilinearly sample a (D, h, w) map at grid coordinates (N, 2); unit rows (N, D)."""
    _, grid_h, grid_w = descriptors.shape
    size = grid_xy.new_tensor([grid_w, grid_h])
    normalised = (grid_xy + 0.5) / size * 2.0 - 1.0  # align_corners=False convention
    sampled = F.grid_sample(descriptors[None], normalised[None, None], mode='bilinear',
                            padding_mode='border', align_corners=False)  # (1, D, 1, N)
    return F.normalize(sampled[0, :, 0].T, dim=1, eps=1e-12)  # (N, D)


def info_nce_loss(anchors: torch.Tensor, descriptors_b: torch.Tensor, grid_xy_b: torch.Tensor,
                  temperature: float = TEMPERATURE, exclusion_cells: float = 1.5) -> torch.Tensor:
    """Compute the InfoNCE loss of anchors in A against the whole descriptor map of B.

    Args:
        anchors: (N, D) unit descriptors of A's points.
        descriptors_b: (D, h, w) unit descriptor map of B.
        grid_xy_b: (N, 2) grid coordinates of the true correspondences in B.
        temperature: Softmax temperature.
        exclusion_cells: Cells of B within this distance of the true position are neither
            positive nor negative.

    Returns:
        Scalar mean loss over the N points.

    Raises:
        ValueError: On mismatched shapes or no points.
    """
    if anchors.dim() != 2 or anchors.shape[0] == 0 or grid_xy_b.shape != (anchors.shape[0], 2) \
            or descriptors_b.dim() != 3 or descriptors_b.shape[0] != anchors.shape[1]:
        raise ValueError(f'info_nce_loss got anchors {tuple(anchors.shape)}, map '
                         f'{tuple(descriptors_b.shape)}, positions {tuple(grid_xy_b.shape)}')
    dim, grid_h, grid_w = descriptors_b.shape
    positives = sample_descriptors(descriptors_b, grid_xy_b)  # (N, D)
    positive = (anchors * positives).sum(dim=1, keepdim=True)  # (N, 1)
    cells = descriptors_b.reshape(dim, -1)  # (D, h*w)
    similarity = anchors @ cells  # (N, h*w)
    rows, cols = torch.meshgrid(torch.arange(grid_h, device=anchors.device),
                                torch.arange(grid_w, device=anchors.device), indexing='ij')
    centres = torch.stack([cols.reshape(-1), rows.reshape(-1)], dim=1).to(grid_xy_b)  # (hw, 2)
    near = torch.cdist(grid_xy_b, centres) < exclusion_cells  # (N, h*w)
    similarity = similarity.masked_fill(near, float('-inf'))
    logits = torch.cat([positive, similarity], dim=1) / temperature  # (N, 1 + h*w)
    target = torch.zeros(len(anchors), dtype=torch.long, device=anchors.device)
    return F.cross_entropy(logits, target)


@torch.no_grad()
def match_accuracy(anchors: torch.Tensor, descriptors_b: torch.Tensor, grid_xy_b: torch.Tensor,
                   radius_cells: float = 1.0) -> float:
    """Share of anchors whose nearest cell of B lies within ``radius_cells`` of the truth."""
    dim, grid_h, grid_w = descriptors_b.shape
    best = (anchors @ descriptors_b.reshape(dim, -1)).argmax(dim=1)  # (N,)
    found = torch.stack([best % grid_w, best // grid_w], dim=1).to(grid_xy_b)  # (N, 2)
    return float(((found - grid_xy_b).norm(dim=1) <= radius_cells).float().mean())
