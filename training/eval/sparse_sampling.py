"""Sparse depth inputs in the style of VOID: keep N measured points, uniformly at random."""

import numpy as np

VOID_DENSITIES = (1500, 500, 150)


def sample_sparse_points(valid_mask: np.ndarray, num_points: int,
                         rng: np.random.Generator) -> np.ndarray:
    """Pick ``num_points`` distinct valid pixels uniformly at random.

    Args:
        valid_mask: Boolean (H, W), pixels with a measured depth.
        num_points: How many points to keep (VOID: 1500, 500 or 150).
        rng: Seeded generator; the same seed gives the same points.

    Returns:
        Boolean (H, W) mask with exactly ``num_points`` True pixels, all inside ``valid_mask``.

    Raises:
        ValueError: If ``num_points`` is not positive or exceeds the number of valid pixels.
    """
    valid = np.flatnonzero(valid_mask)
    if num_points <= 0 or num_points > valid.size:
        raise ValueError(f'cannot keep {num_points} points from {valid.size} valid pixels')
    chosen = rng.choice(valid, size=num_points, replace=False)
    mask = np.zeros(valid_mask.size, bool)
    mask[chosen] = True
    return mask.reshape(valid_mask.shape)
