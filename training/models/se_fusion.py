"""Token-wise squeeze-and-excitation fusion (ESANet's SE-add, applied per token)."""

import torch
from torch import nn


class TokenSE(nn.Module):
    """Gate each token by a sigmoid of a two-layer bottleneck of itself.

    ``SE(x) = x * sigmoid(W2 relu(W1 x + b1) + b2)`` with W1: D -> D / r, W2: D / r -> D.
    """

    def __init__(self, dim: int, reduction: int = 16):
        """Create the bottleneck.

        Args:
            dim: Token width D.
            reduction: Bottleneck reduction r (hidden width at least 1).
        """
        super().__init__()
        hidden = max(1, dim // reduction)
        self.gate = nn.Sequential(
            nn.Linear(dim, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, dim), nn.Sigmoid())

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Gate ``tokens`` (B, N, D)."""
        return tokens * self.gate(tokens)  # (B, N, D)


class SEFusion(nn.Module):
    """Fuse depth and RGB tokens: ``SE_depth(x_depth) + SE_rgb(x_rgb)``, separate weights."""

    def __init__(self, dim: int, reduction: int = 16):
        """Create the two gates.

        Args:
            dim: Token width D.
            reduction: Bottleneck reduction of both gates.
        """
        super().__init__()
        self.depth_se = TokenSE(dim, reduction)
        self.rgb_se = TokenSE(dim, reduction)

    def forward(self, depth_tokens: torch.Tensor, rgb_tokens: torch.Tensor) -> torch.Tensor:
        """Fuse two token sets of the same shape (B, N, D)."""
        return self.depth_se(depth_tokens) + self.rgb_se(rgb_tokens)  # (B, N, D)
