"""Depth removal masks: Perlin and blocky noise, the noise-shift schedule, multi-scale masks.

paper.md section 4 and proposals 8-9. Every function works on batches, runs its per-pixel work
on the device of its inputs and draws all randomness from an optional ``torch.Generator``
(small random tensors are drawn on the generator's device and moved), so a seeded generator
reproduces the masks exactly.
"""

import math
from typing import Dict, List, Optional, Sequence, Tuple

import torch

PERLIN_SCALES = (2, 4, 8, 16)
PERLIN_ALIGN = 32


def uniform(shape: Sequence[int], generator: Optional[torch.Generator],
            device: torch.device, low: float = 0.0, high: float = 1.0) -> torch.Tensor:
    """U(low, high) float32 of ``shape`` on ``device``, drawn from ``generator``.

    The values are drawn on the generator's device (a CPU generator can feed GPU data) and
    moved to ``device``.
    """
    source = generator.device if generator is not None else device
    values = torch.rand(tuple(shape), generator=generator, device=source).to(device)
    return low + (high - low) * values


def _choice(values: Sequence[int], count: int, generator: Optional[torch.Generator],
            device: torch.device) -> torch.Tensor:
    """Draw ``count`` entries of ``values`` uniformly (long tensor on ``device``)."""
    index = (uniform((count,), generator, device) * len(values)).long().clamp(
        max=len(values) - 1)
    return torch.tensor(values, device=device)[index]


def _fade(t: torch.Tensor) -> torch.Tensor:
    """Perlin's quintic fade 6t^5 - 15t^4 + 10t^3."""
    return t * t * t * (t * (t * 6.0 - 15.0) + 10.0)


def perlin_noise(batch: int, height: int, width: int,
                 generator: Optional[torch.Generator] = None,
                 device: torch.device = torch.device('cpu'),
                 scales: Sequence[int] = PERLIN_SCALES) -> torch.Tensor:
    """2-D gradient noise, one field per sample, on a lattice of r_y x r_x cells.

    r_y and r_x are drawn independently per sample from ``scales``. The field is computed on
    the size rounded up to a multiple of 32 and cropped, as in the reference.

    Args:
        batch: Number of fields B.
        height: Field height H.
        width: Field width W.
        generator: Random source.
        device: Where the fields are computed.
        scales: Lattice cell counts per axis to draw from.

    Returns:
        float32 (B, H, W), values roughly in [-1, 1].
    """
    padded_h = math.ceil(height / PERLIN_ALIGN) * PERLIN_ALIGN
    padded_w = math.ceil(width / PERLIN_ALIGN) * PERLIN_ALIGN
    cells_y = _choice(scales, batch, generator, device)  # (B,)
    cells_x = _choice(scales, batch, generator, device)  # (B,)
    lattice = max(scales) + 1
    angle = 2.0 * math.pi * uniform((batch, lattice, lattice), generator, device)
    gradients = torch.stack([torch.cos(angle), torch.sin(angle)], dim=-1)  # (B, L, L, 2)
    y = torch.arange(padded_h, device=device) / padded_h * cells_y[:, None]  # (B, Hp)
    x = torch.arange(padded_w, device=device) / padded_w * cells_x[:, None]  # (B, Wp)
    y0, x0 = y.floor().long(), x.floor().long()
    fy, fx = y - y0, x - x0  # (B, Hp), (B, Wp) position inside the cell
    rows = torch.arange(batch, device=device)[:, None, None]

    def corner(dy: int, dx: int) -> torch.Tensor:
        """Return the gradient of one cell corner dotted with the offset to it: (B, Hp, Wp)."""
        g = gradients[rows, (y0 + dy)[:, :, None], (x0 + dx)[:, None, :]]  # (B, Hp, Wp, 2)
        return g[..., 0] * (fy - dy)[:, :, None] + g[..., 1] * (fx - dx)[:, None, :]

    uy, ux = _fade(fy)[:, :, None], _fade(fx)[:, None, :]  # (B, Hp, 1), (B, 1, Wp)
    top = torch.lerp(corner(0, 0), corner(0, 1), ux)  # (B, Hp, Wp)
    bottom = torch.lerp(corner(1, 0), corner(1, 1), ux)  # (B, Hp, Wp)
    return (math.sqrt(2.0) * torch.lerp(top, bottom, uy))[:, :height, :width]  # (B, H, W)


def blocky_noise(batch: int, height: int, width: int,
                 generator: Optional[torch.Generator] = None,
                 device: torch.device = torch.device('cpu'),
                 max_fraction: float = 0.75, min_cells: int = 10) -> torch.Tensor:
    """I.i.d. U(0, 1) values on a random low-resolution grid, nearest-upsampled.

    The grid of each sample has U(0, ``max_fraction``) x the image size cells per axis, at
    least ``min_cells`` (and at most the image size).

    Args:
        batch: Number of fields B.
        height: Field height H.
        width: Field width W.
        generator: Random source.
        device: Where the fields are computed.
        max_fraction: Largest grid size relative to the image.
        min_cells: Smallest grid size per axis.

    Returns:
        float32 (B, H, W) in [0, 1).
    """
    def grid_size(size: int) -> Tuple[torch.Tensor, int]:
        """Draw the per-sample cell count (B,) along an axis of ``size``; return its max."""
        cells = (uniform((batch,), generator, device) * max_fraction * size).long()
        lowest = min(min_cells, size)
        return cells.clamp(min=lowest, max=size), max(lowest, int(max_fraction * size))

    cells_h, max_h = grid_size(height)
    cells_w, max_w = grid_size(width)
    values = uniform((batch, max_h, max_w), generator, device)  # (B, h_max, w_max)
    row = torch.arange(height, device=device) * cells_h[:, None] // height  # (B, H)
    col = torch.arange(width, device=device) * cells_w[:, None] // width  # (B, W)
    rows = torch.arange(batch, device=device)[:, None, None]
    return values[rows, row[:, :, None], col[:, None, :]]  # (B, H, W)


def threshold_noise(noise: torch.Tensor, valid: torch.Tensor,
                    ratios: torch.Tensor) -> torch.Tensor:
    """Mark the ``ratio`` share of valid pixels with the highest noise (per sample).

    Args:
        noise: (B, H, W) noise fields.
        valid: (B, H, W) bool, pixels that have depth.
        ratios: (B,) removal ratios in [0, 1].

    Returns:
        bool (B, H, W), a subset of ``valid``; ties at the threshold (blocky noise) are all
        removed, so the share can exceed the ratio by up to one block.
    """
    flat_valid = valid.flatten(1)  # (B, H * W)
    flat = noise.flatten(1).masked_fill(~flat_valid, float('-inf'))  # (B, H * W)
    ordered = flat.sort(dim=1, descending=True).values  # (B, H * W)
    count = (ratios.to(noise.device) * flat_valid.sum(dim=1)).round().long()  # (B,)
    threshold = ordered.gather(1, (count - 1).clamp(min=0)[:, None])  # (B, 1)
    mask = (flat >= threshold) & flat_valid & (count > 0)[:, None]  # (B, H * W)
    return mask.view_as(valid)


def sample_masks(valid: torch.Tensor, ratios: torch.Tensor,
                 generator: Optional[torch.Generator] = None, perlin_prob: float = 0.5,
                 perlin_scales: Sequence[int] = PERLIN_SCALES,
                 block_max_fraction: float = 0.75, block_min_cells: int = 10) -> torch.Tensor:
    """Draw removal masks: Perlin noise with ``perlin_prob``, blocky noise otherwise.

    Args:
        valid: (B, H, W) bool, pixels with depth; only those can be removed.
        ratios: (B,) share of the valid pixels to remove.
        generator: Random source.
        perlin_prob: Probability of the Perlin shape per sample.
        perlin_scales: Perlin lattice sizes.
        block_max_fraction: Blocky-noise grid size limit (see ``blocky_noise``).
        block_min_cells: Blocky-noise minimum grid size.

    Returns:
        bool (B, H, W), True = remove.
    """
    if valid.dim() != 3 or ratios.shape != valid.shape[:1]:
        raise ValueError(f'need valid (B, H, W) and ratios (B,), got {tuple(valid.shape)} '
                         f'and {tuple(ratios.shape)}')
    batch, height, width = valid.shape
    device = valid.device
    use_perlin = uniform((batch,), generator, device) < perlin_prob  # (B,)
    noise = torch.empty((batch, height, width), device=device)
    count = int(use_perlin.sum())
    noise[use_perlin] = perlin_noise(count, height, width, generator, device, perlin_scales)
    noise[~use_perlin] = blocky_noise(batch - count, height, width, generator, device,
                                      block_max_fraction, block_min_cells)
    return threshold_noise(noise, valid, ratios)


def multiscale(x: torch.Tensor, levels: int = 4) -> List[torch.Tensor]:
    """Nearest-downsample by 2 per level: sizes (H, W), (H // 2, W // 2), ...

    Args:
        x: Mask or depth (..., H, W), any dtype.
        levels: Number of levels including the input.

    Returns:
        ``levels`` tensors, finest first; level k keeps pixel (2^k i, 2^k j).
    """
    out = [x]
    for _ in range(levels - 1):
        prev = out[-1]
        height, width = prev.shape[-2] // 2, prev.shape[-1] // 2
        out.append(prev[..., ::2, ::2][..., :height, :width])  # (..., H / 2, W / 2)
    return out


def sparsify_depth(depth: torch.Tensor, num_points: int,
                   generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Keep ``num_points`` random valid pixels per sample (VOID-style 1500/500/150 density).

    Args:
        depth: (B, H, W) or (B, 1, H, W) metres, 0 = invalid.
        num_points: Valid pixels to keep (all of them when a sample has fewer).
        generator: Random source.

    Returns:
        A copy of ``depth`` with every other pixel set to 0.
    """
    flat = depth.flatten(1)  # (B, N)
    if num_points >= flat.shape[1]:
        return depth.clone()
    score = uniform(flat.shape, generator, depth.device).masked_fill(flat <= 0, -1.0)
    keep = torch.zeros_like(flat, dtype=torch.bool)
    keep.scatter_(1, score.topk(num_points, dim=1).indices, True)  # (B, N)
    return torch.where(keep & (flat > 0), flat, torch.zeros_like(flat)).view_as(depth)


class NoiseShift:
    """Mask-ratio schedule: t ~ N(mu, sigma) clipped, moving from easy to hard.

    mu and sigma stay at their start values until ``warmup_steps``, rise linearly until
    ``end_steps`` and stay at their end values afterwards (paper.md proposal 8).

    Attributes:
        warmup_steps: Last step of the warm-up.
        end_steps: Step at which the end values are reached.
        mu: (start, end) mean.
        sigma: (start, end) standard deviation.
        clip: (low, high) bounds of t.
        last_step: Step of the latest ``sample`` call (checkpointed).
    """

    def __init__(self, warmup_steps: int, end_steps: int,
                 mu: Tuple[float, float] = (0.3, 0.5), sigma: Tuple[float, float] = (0.1, 0.3),
                 clip: Tuple[float, float] = (0.10, 0.99)):
        """Create the schedule.

        Args:
            warmup_steps: Steps at the start values.
            end_steps: Step where the end values are reached (>= ``warmup_steps``).
            mu: (start, end) mean.
            sigma: (start, end) standard deviation.
            clip: (low, high) bounds of the ratio.
        """
        if not 0 <= warmup_steps <= end_steps:
            raise ValueError(f'need 0 <= warmup_steps <= end_steps, got {warmup_steps}, '
                             f'{end_steps}')
        if not 0.0 <= clip[0] <= clip[1] <= 1.0:
            raise ValueError(f'clip must satisfy 0 <= low <= high <= 1, got {clip}')
        self.warmup_steps = int(warmup_steps)
        self.end_steps = int(end_steps)
        self.mu = tuple(float(v) for v in mu)
        self.sigma = tuple(float(v) for v in sigma)
        self.clip = tuple(float(v) for v in clip)
        self.last_step = 0

    @classmethod
    def from_fractions(cls, total_steps: int, warmup_fraction: float = 0.1,
                       end_fraction: float = 0.2, **kwargs) -> 'NoiseShift':
        """Create the schedule with warm-up and end given as fractions of the training run."""
        return cls(int(round(warmup_fraction * total_steps)),
                   int(round(end_fraction * total_steps)), **kwargs)

    def params(self, step: int) -> Tuple[float, float]:
        """Return (mu, sigma) at ``step``."""
        if step <= self.warmup_steps:
            progress = 0.0
        elif step >= self.end_steps:
            progress = 1.0
        else:
            progress = (step - self.warmup_steps) / (self.end_steps - self.warmup_steps)
        return (self.mu[0] + progress * (self.mu[1] - self.mu[0]),
                self.sigma[0] + progress * (self.sigma[1] - self.sigma[0]))

    def sample(self, step: int, n: int, generator: Optional[torch.Generator] = None,
               device: torch.device = torch.device('cpu')) -> torch.Tensor:
        """Draw ``n`` clipped mask ratios (n,) for ``step``."""
        mu, sigma = self.params(step)
        self.last_step = int(step)
        source = generator.device if generator is not None else device
        normal = torch.randn((n,), generator=generator, device=source).to(device)
        return (mu + sigma * normal).clamp(*self.clip)

    def state_dict(self) -> Dict[str, object]:
        """Return the schedule as a plain dict."""
        return {'warmup_steps': self.warmup_steps, 'end_steps': self.end_steps,
                'mu': list(self.mu), 'sigma': list(self.sigma), 'clip': list(self.clip),
                'last_step': self.last_step}

    def load_state_dict(self, state: Dict[str, object]) -> None:
        """Restore a schedule saved with ``state_dict``."""
        restored = NoiseShift(state['warmup_steps'], state['end_steps'], state['mu'],
                              state['sigma'], state['clip'])
        self.__dict__.update(restored.__dict__)
        self.last_step = int(state['last_step'])
