"""FPN / U-Net top-down decoder for self-supervised pretraining (discarded afterwards).

paper.md section 3: the four fused token maps are bilinearly resized to H/2, H/4, H/8, H/16
(shallowest fusion block -> finest map); four U-Net blocks go top-down from H/16, each
upsampling (nearest) to the next level, concatenating the skip map (none for the last block)
and applying two 3x3 conv-BN-ReLU; a 3x3 conv depth head on every block output predicts
depth at H/8, H/4, H/2 and H.

Level k has size (H // 2**k, W // 2**k) exactly. Upsampling goes "to the next level's size"
rather than "x 2", which is the same when H and W are multiples of 32 and otherwise avoids
cropping the input (the reference rounds H, W down to multiples of 32).
"""

from typing import List, Optional, Sequence, Tuple

import torch
from torch import nn
import torch.nn.functional as F

VIT_S_CHANNELS = (256, 128, 64, 32)
VIT_S_WIDTH = 384
DEFAULT_BINS_M = (10.0, 1.0, 0.1, 0.01)
NUM_LEVELS = 4


def scaled_channels(embed_dim: int) -> Tuple[int, ...]:
    """Scale the ViT-S decoder widths (256, 128, 64, 32) by ``embed_dim / 384``.

    Rounded to multiples of 8 (at least 8): ViT-B (768) gives (512, 256, 128, 64).
    """
    return tuple(max(8, int(round(c * embed_dim / VIT_S_WIDTH / 8)) * 8) for c in VIT_S_CHANNELS)


def level_sizes(height: int, width: int, levels: int = NUM_LEVELS + 1) -> List[Tuple[int, int]]:
    """Return [(H, W), (H // 2, W // 2), ...] for ``levels`` levels."""
    return [(height >> k, width >> k) for k in range(levels)]


class UNetBlock(nn.Module):
    """Two 3x3 conv-BN-ReLU layers."""

    def __init__(self, in_channels: int, out_channels: int):
        """Create the block.

        Args:
            in_channels: Input channels (upsampled map plus skip).
            out_channels: Output channels.
        """
        super().__init__()
        self.layers = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the block to (B, C_in, h, w)."""
        return self.layers(x)  # (B, C_out, h, w)


class DepthHead(nn.Module):
    """3x3 conv to metric depth: one ReLU channel, or ReLU bins summed with weights ``bins_m``.

    The output starts near 1 m (bias 1 on the single channel or on the 1 m bin) so that the
    ReLU is alive everywhere at the start: the loss ignores predictions below 1 mm, which
    therefore get no gradient and could never recover.
    """

    def __init__(self, in_channels: int, bins_m: Optional[Sequence[float]] = None):
        """Create the head.

        Args:
            in_channels: Input channels.
            bins_m: None for the single-channel output, else the bin sizes b_k in metres;
                depth = sum_k relu(r_k) * b_k, damped below 1e-4 m as in the reference.
        """
        super().__init__()
        self.conv = nn.Conv2d(in_channels, 1 if bins_m is None else len(bins_m), 3, padding=1)
        bins = None if bins_m is None else torch.tensor(bins_m, dtype=torch.float32)
        self.register_buffer('bins', None if bins is None else bins.view(1, -1, 1, 1),
                             persistent=False)
        start = 0 if bins is None else int(torch.argmin((bins - 1.0).abs()))
        with torch.no_grad():
            self.conv.bias.zero_()
            self.conv.bias[start] = 1.0  # start at 1 m (the bin closest to 1 m for bins)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Predict depth (B, 1, h, w) in metres from (B, C, h, w)."""
        out = F.relu(self.conv(x))  # (B, 1 or K, h, w)
        if self.bins is None:
            return out
        depth = (out * self.bins).sum(dim=1, keepdim=True)  # (B, 1, h, w)
        # Reference behaviour: push tiny depths further to zero, without changing the gradient
        # direction there (the cube is detached).
        return torch.where(depth < 1e-4, depth * depth.detach() ** 3, depth)


class FPNDecoder(nn.Module):
    """Top-down decoder from four ViT token maps to four depth predictions.

    Attributes:
        channels: Output channels of the four U-Net blocks (coarse to fine).
    """

    def __init__(self, embed_dim: int, channels: Optional[Sequence[int]] = None,
                 bins_m: Optional[Sequence[float]] = None):
        """Create the blocks and heads.

        Args:
            embed_dim: Width D of the token maps.
            channels: Four block widths, coarse to fine; ``scaled_channels`` when None.
            bins_m: None for the single ReLU output, else bin sizes (see ``DepthHead``).
        """
        super().__init__()
        self.channels = tuple(channels) if channels is not None else scaled_channels(embed_dim)
        if len(self.channels) != NUM_LEVELS:
            raise ValueError(f'the decoder needs 4 channel widths, got {self.channels}')
        in_channels = [embed_dim + embed_dim] + [
            c + embed_dim for c in self.channels[:2]] + [self.channels[2]]
        self.blocks = nn.ModuleList(
            UNetBlock(i, o) for i, o in zip(in_channels, self.channels))
        self.heads = nn.ModuleList(DepthHead(c, bins_m) for c in self.channels)

    def forward(self, maps: List[torch.Tensor], size: Tuple[int, int]) -> List[torch.Tensor]:
        """Decode.

        Args:
            maps: Four maps (B, D, h, w), shallowest fusion block first.
            size: Input image size (H, W).

        Returns:
            Depth (B, 1, H // 2**k, W // 2**k) for k = 0, 1, 2, 3 (finest first), metres.

        Raises:
            ValueError: H or W below 16 (the coarsest map would be empty).
        """
        if min(size) < 2 ** NUM_LEVELS:
            raise ValueError(f'the decoder needs H, W >= {2 ** NUM_LEVELS}, got {tuple(size)}')
        sizes = level_sizes(*size)
        # map i goes to level i + 1: (B, D, H / 2**(i + 1), W / 2**(i + 1))
        pyramid = [F.interpolate(m, size=sizes[i + 1], mode='bilinear', align_corners=False)
                   for i, m in enumerate(maps)]
        x = pyramid[3]  # (B, D, H / 16, W / 16)
        depths = []
        for step, (block, head) in enumerate(zip(self.blocks, self.heads)):
            level = 3 - step  # 3, 2, 1, 0: the level this block outputs
            x = F.interpolate(x, size=sizes[level], mode='nearest')  # (B, C, h_l, w_l)
            if level > 0:
                x = torch.cat([x, pyramid[level - 1]], dim=1)  # (B, C + D, h_l, w_l)
            x = block(x)  # (B, C_step, h_l, w_l)
            depths.append(head(x))  # (B, 1, h_l, w_l)
        return depths[::-1]
