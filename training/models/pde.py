"""Positional depth encoding in torch, numerically matching ``vd_ros.core.pde``.

The numpy module is the one reference; this file mirrors it for batched tensors on any device
(paper.md section 2). The argument of the finest pair reaches about 1.3e4 rad at 15 m, where
float32 rounding alone would cost ~1e-3 in the output, so the angle and the sine/cosine are
computed in float64 one frequency at a time (peak extra memory: one float64 depth map).
``decode_depth`` inverts the encoding with graph operations (the completion head reads the
measured depth back from the ``pde`` input of an exported model).
"""

import math

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


def decode_depth(pde: torch.Tensor, config: PDEConfig = PDEConfig()) -> tuple:
    """Recover the measured metric depth from its positional depth encoding (inside a graph).

    The first sin/cos pair has the longest wavelength, ``2 pi / inverse_wavelengths()[0]``
    (``max_depth_m`` with the paper's temperature and scale), so its angle, taken in
    [0, 2 pi), is the depth without ambiguity. Invalid pixels encode depth ``EPSILON_M``, far
    below ``min_depth_m``: a decoded depth under half of ``min_depth_m`` means no measurement.
    From float32 codes the depth comes back within about 1e-6 m; a depth within that of
    ``max_depth_m`` itself (angle 2 pi) may read as invalid.

    Args:
        pde: (B, C, H, W) codes of ``positional_depth_encoding``.
        config: The encoding parameters.

    Returns:
        ``(depth (B, 1, H, W) metres with 0 where invalid, valid (B, 1, H, W) float 0/1)``.

    Raises:
        ValueError: The first pair's wavelength is shorter than ``max_depth_m`` (ambiguous).
    """
    multiplier = float(config.inverse_wavelengths()[0])
    if multiplier * config.max_depth_m > 2.0 * math.pi * (1.0 + 1e-9):
        raise ValueError(f'the first PDE pair wraps before max_depth_m {config.max_depth_m} '
                         f'(wavelength {2.0 * math.pi / multiplier:.4g} m): depth cannot be '
                         'decoded from it')
    angle = torch.atan2(pde[:, 0:1].float(), pde[:, 1:2].float())  # (B, 1, H, W) in [-pi, pi]
    angle = torch.remainder(angle, 2.0 * math.pi)
    depth = angle * (1.0 / multiplier)  # (B, 1, H, W)
    valid = (depth >= 0.5 * config.min_depth_m).float()
    return depth * valid, valid
