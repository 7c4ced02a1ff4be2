"""Randomised depth distributions, input corruption and range handling (paper.md section 4).

All functions take batched metric depth (B, H, W) with 0 = no measurement, keep zeros at
zero, work on the device of the depth and draw their randomness from an optional
``torch.Generator`` (drawn on the generator's device, then moved).

Order in the pretraining pipeline: range handling (``training.data.transforms.depth_range``,
per sample in the DataLoader) -> ``randomize_depth_distribution`` (the result is the target)
-> ``corrupt_depth`` (input only) -> masking -> PDE.
"""

from typing import Dict, Optional, Sequence, Tuple

import torch

from training.data.masking import uniform

SHIFT, RERANGE, SCALE, UNCHANGED = range(4)

# Candidate range ends in metres, one group drawn uniformly, then two distinct values of it.
RANGE_GROUPS_M: Dict[str, Tuple[float, ...]] = {
    'very_close': tuple(round(0.055 + 0.1 * i, 3) for i in range(10)),
    'near': tuple(round(0.5 + 0.2 * i, 1) for i in range(9)),
    'room': tuple(0.5 * i for i in range(1, 11)),
    'indoor': tuple(float(i) for i in range(1, 15)),
    'far': tuple(float(v) for v in range(50, 101, 10)),
}


def _range_table(groups: Dict[str, Sequence[float]], min_depth_m: float,
                 max_depth_m: float, device: torch.device) -> Tuple[torch.Tensor, torch.Tensor]:
    """Pad the usable groups (>= 2 values inside the range) into (G, L) plus lengths (G,)."""
    usable = [[v for v in values if min_depth_m <= v <= max_depth_m]
              for values in groups.values()]
    usable = [values for values in usable if len(values) >= 2]
    if not usable:
        raise ValueError(f'no range group has two values inside [{min_depth_m}, '
                         f'{max_depth_m}] m: {groups}')
    width = max(len(values) for values in usable)
    table = torch.tensor([values + [values[-1]] * (width - len(values)) for values in usable],
                         device=device)
    return table, torch.tensor([len(values) for values in usable], device=device)


def _masked_stats(depth: torch.Tensor, valid: torch.Tensor):
    """Per-sample min, max and std (B,) over valid pixels (0 for empty samples)."""
    count = valid.sum(dim=(1, 2)).clamp(min=1)  # (B,)
    low = torch.where(valid, depth, torch.full_like(depth, float('inf'))).amin(dim=(1, 2))
    high = torch.where(valid, depth, torch.full_like(depth, float('-inf'))).amax(dim=(1, 2))
    mean = (depth * valid).sum(dim=(1, 2)) / count  # (B,)
    var = (((depth - mean[:, None, None]) * valid) ** 2).sum(dim=(1, 2)) / count  # (B,)
    empty = ~valid.flatten(1).any(dim=1)
    zero = torch.zeros_like(mean)
    return (torch.where(empty, zero, low), torch.where(empty, zero, high), var.sqrt())


def _to_range(depth: torch.Tensor, min_depth_m: float, max_depth_m: float) -> torch.Tensor:
    """Set values outside [min_depth_m, max_depth_m] (and non-finite ones) to 0."""
    valid = torch.isfinite(depth) & (depth >= min_depth_m) & (depth <= max_depth_m)
    return torch.where(valid, depth, torch.zeros_like(depth))


def randomize_depth_distribution(
        depth: torch.Tensor, generator: Optional[torch.Generator] = None,
        min_depth_m: float = 0.05, max_depth_m: float = 15.0, range_jitter: float = 0.1,
        scale_range: Tuple[float, float] = (0.8, 1.2),
        range_groups: Dict[str, Sequence[float]] = RANGE_GROUPS_M,
        branches: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Change each map's depth statistics: shift, re-range, scale or keep (25 % each).

    - shift: add j * std(valid depth), j ~ U(-1, 1); moved up so the minimum stays
      >= ``min_depth_m``;
    - re-range: draw a range group, two distinct values of it, each times U(1 -+ jitter);
      map the valid depth linearly from [min, max] onto them;
    - scale: multiply by U(``scale_range``);
    - unchanged.

    Zeros stay zero; afterwards values outside [min_depth_m, max_depth_m] become 0.

    Args:
        depth: (B, H, W) metres, 0 = invalid.
        generator: Random source.
        min_depth_m: Smallest valid depth.
        max_depth_m: Largest valid depth; range groups beyond it are dropped.
        range_jitter: Relative jitter of the re-range ends (symmetric).
        scale_range: Range of the scale factor (symmetric around 1 by default).
        range_groups: Candidate range ends per group.
        branches: Optional (B,) long of SHIFT/RERANGE/SCALE/UNCHANGED to force a branch.

    Returns:
        The randomised (B, H, W) depth.
    """
    batch, device = depth.shape[0], depth.device
    valid = depth > 0  # (B, H, W)
    if branches is None:
        branches = (uniform((batch,), generator, device) * 4).long().clamp(max=3)
    branches = branches.to(device)
    low, high, std = _masked_stats(depth, valid)  # (B,) each

    shift = uniform((batch,), generator, device, -1.0, 1.0) * std  # (B,)
    shift = shift + (min_depth_m - (low + shift)).clamp(min=0.0)
    shifted = depth + shift[:, None, None]  # (B, H, W)

    table, lengths = _range_table(range_groups, min_depth_m, max_depth_m, device)
    group = (uniform((batch,), generator, device) * len(lengths)).long().clamp(
        max=len(lengths) - 1)  # (B,)
    count = lengths[group]  # (B,)
    first = (uniform((batch,), generator, device) * count).long().clamp(max=count - 1)
    second = (uniform((batch,), generator, device) * (count - 1)).long().clamp(max=count - 2)
    second = second + (second >= first).long()  # distinct from first
    ends = torch.stack([table[group, first], table[group, second]], dim=1)  # (B, 2)
    ends = ends * uniform((batch, 2), generator, device, 1 - range_jitter, 1 + range_jitter)
    ends = ends.clamp(min_depth_m, max_depth_m).sort(dim=1).values  # (B, 2)
    span = (high - low)[:, None, None]
    unit = torch.where(span > 0, (depth - low[:, None, None]) / span.clamp(min=1e-12),
                       torch.full_like(depth, 0.5))  # (B, H, W) in [0, 1] on valid pixels
    reranged = ends[:, :1, None] + unit * (ends[:, 1:, None] - ends[:, :1, None])

    scaled = depth * uniform((batch,), generator, device, *scale_range)[:, None, None]

    choice = branches[:, None, None]
    out = torch.where(choice == SHIFT, shifted,
                      torch.where(choice == RERANGE, reranged,
                                  torch.where(choice == SCALE, scaled, depth)))
    return _to_range(torch.where(valid, out, torch.zeros_like(out)), min_depth_m, max_depth_m)


def corrupt_depth(depth: torch.Tensor, generator: Optional[torch.Generator] = None,
                  noise_m: float = 0.003, outlier_prob: float = 0.5,
                  outlier_fraction: float = 1e-4, min_depth_m: float = 0.05,
                  max_depth_m: float = 15.0, clamp_fraction: float = 0.95) -> torch.Tensor:
    """Add sensor-style corruption to the network input (never to the target).

    Valid pixels get U(-noise_m, noise_m); in a sample chosen with ``outlier_prob`` each pixel
    becomes an outlier with probability ``outlier_fraction``, drawn (50/50 per sample) from
    U(0, clamp_fraction * max_depth_m) or U(0, 1.5 * the map's maximum). Finally values below
    ``min_depth_m`` become 0 and values above ``clamp_fraction * max_depth_m`` are clamped.

    Args:
        depth: (B, H, W) metres, 0 = invalid.
        generator: Random source.
        noise_m: Half-width of the uniform noise.
        outlier_prob: Probability that a sample gets outliers.
        outlier_fraction: Share of its pixels replaced by outliers.
        min_depth_m: Smallest valid depth.
        max_depth_m: Largest valid depth.
        clamp_fraction: Clamp limit as a fraction of ``max_depth_m``.

    Returns:
        The corrupted (B, H, W) depth.
    """
    batch, device = depth.shape[0], depth.device
    limit = clamp_fraction * max_depth_m
    noise = uniform(depth.shape, generator, device, -noise_m, noise_m)
    out = torch.where(depth > 0, depth + noise, depth)  # (B, H, W)
    with_outliers = uniform((batch,), generator, device) < outlier_prob  # (B,)
    hit = (uniform(depth.shape, generator, device) < outlier_fraction) & \
        with_outliers[:, None, None]  # (B, H, W)
    relative = uniform((batch,), generator, device) < 0.5  # (B,)
    absolute = torch.full((batch,), limit, device=device, dtype=depth.dtype)
    top = torch.where(relative, 1.5 * depth.amax(dim=(1, 2)), absolute)  # (B,)
    outliers = uniform(depth.shape, generator, device) * top[:, None, None]  # (B, H, W)
    out = torch.where(hit, outliers, out)
    out = torch.where(out < min_depth_m, torch.zeros_like(out), out)
    return out.clamp(max=limit)
