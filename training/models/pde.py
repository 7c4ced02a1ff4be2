"""Positional depth encoding in torch, numerically matching ``vd_ros.core.pde``.

The numpy module is the one reference; this file mirrors it for batched tensors on any device
(paper.md section 2). The argument of the finest pair reaches about 1.3e4 rad at 15 m, where
float32 rounding alone would cost ~1e-3 in the output, so the angle and the sine/cosine are
computed in float64 one frequency at a time (peak extra memory: one float64 depth map).
"""

import torch

from vd_ros.core.pde import EPSILON_M, PDEConfig


def sanitize_depth(depth_m: torch.Tensor, config: PDEConfig = PDEConfig()) -> torch.Tensor:
    """Set every invalid depth (non-finite, out of range) to 0, like the numpy reference.

    Args:
        depth_m: Depth in metres, any shape and floating or integer dtype.
        config: Valid range.

    Returns:
        float32 tensor of the same shape with invalid pixels set to 0.
    """
    depth = depth_m.to(torch.float32)
    valid = torch.isfinite(depth) & (depth >= config.min_depth_m) & (depth <= config.max_depth_m)
    return torch.where(valid, depth, torch.zeros_like(depth))


def positional_depth_encoding(
        depth_m: torch.Tensor, config: PDEConfig = PDEConfig()) -> torch.Tensor:
    """Encode metric depth as interleaved sin/cos channels (sin_0, cos_0, sin_1, ...).

    Args:
        depth_m: Depth in metres, shape (B, H, W) or (B, 1, H, W); 0, NaN, Inf and values
            outside [min_depth_m, max_depth_m] mean "no measurement" and encode as depth
            ``EPSILON_M``.
        config: Encoding parameters.

    Returns:
        float32 tensor (B, C, H, W) on the device of ``depth_m``.
    """
    if depth_m.dim() == 4 and depth_m.shape[1] == 1:
        depth_m = depth_m[:, 0]  # (B, H, W)
    if depth_m.dim() != 3:
        raise ValueError(
            f'depth must have shape (B, H, W) or (B, 1, H, W), got {tuple(depth_m.shape)}')
    depth = sanitize_depth(depth_m, config).to(torch.float64)  # (B, H, W)
    depth = torch.where(depth == 0.0, torch.full_like(depth, EPSILON_M), depth)
    batch, height, width = depth.shape
    code = depth.new_empty((batch, config.channels, height, width), dtype=torch.float32)
    for pair, multiplier in enumerate(config.inverse_wavelengths().tolist()):
        angle = depth * multiplier  # (B, H, W) float64
        code[:, 2 * pair] = torch.sin(angle)
        code[:, 2 * pair + 1] = torch.cos(angle)
    return code
