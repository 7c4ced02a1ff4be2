"""Push-pull fill: a normalised-convolution pyramid that fills scattered values in a graph.

Push (Gortler et al.'s push-pull): level after level, each 2 x 2 cell gets the weighted mean of
its children and the weight ``min(1, sum of the children's weights)``, down to one pixel (odd
sizes are zero-padded with weight 0, so padding never counts). Pull: from the coarsest level
up, each level keeps its own mean where it has support and takes the bilinearly upsampled
coarser estimate elsewhere, blended by the level's weight. A pixel of weight 1 keeps its value
exactly; between the known pixels the fill is smooth, for any density from ~100 points to
dense depth with holes.
Only average pooling, bilinear resizing and element-wise operations: it exports to ONNX.
"""

from typing import List, Tuple

import torch
import torch.nn.functional as F

_EPS = 1e-12


def push_pull_fill(values: torch.Tensor,
                   weight: torch.Tensor) -> Tuple[torch.Tensor, List[torch.Tensor]]:
    """Fill ``values`` everywhere from the pixels where ``weight`` > 0.

    Args:
        values: (B, C, H, W) values, read where ``weight`` > 0.
        weight: (B, 1, H, W) confidence in [0, 1] (e.g. the validity mask).

    Returns:
        ``(filled (B, C, H, W), weights)``: ``weights[k]`` (B, 1, ceil(H / 2**k), ...) is the
        support of each cell of level k, in [0, 1] (``weights[0]`` is ``weight``). Where no pixel
        of a sample has weight, its fill is 0.
    """
    means, weights = [values], [weight]  # level 0: (B, C, H, W), (B, 1, H, W)
    while max(weights[-1].shape[-2:]) > 1:
        height, width = weights[-1].shape[-2:]
        pad = (0, width % 2, 0, height % 2)  # right, bottom
        total = 4.0 * F.avg_pool2d(F.pad(weights[-1], pad), 2)  # (B, 1, ceil(h / 2), ...)
        weighted = 4.0 * F.avg_pool2d(F.pad(means[-1] * weights[-1], pad), 2)
        means.append(weighted / total.clamp_min(_EPS))  # (B, C, ceil(h / 2), ceil(w / 2))
        weights.append(total.clamp(max=1.0))
    filled = means[-1]  # (B, C, 1, 1)
    for level in range(len(means) - 2, -1, -1):
        height, width = weights[level].shape[-2:]
        coarse_h, coarse_w = filled.shape[-2:]
        upsampled = F.interpolate(filled, size=(2 * coarse_h, 2 * coarse_w), mode='bilinear',
                                  align_corners=False)[..., :height, :width]  # (B, C, h, w)
        filled = weights[level] * means[level] + (1.0 - weights[level]) * upsampled
    return filled, weights
