"""Completion-head batches: input patterns drawn from measured depth, the frozen model's run.

Shared by every script that trains a completion head (``training.train_completion`` on the
pretraining data, ``training.adapt`` on a recording): each frame's measured depth is masked as
the completion protocol does (``training.eval.completion_protocol.input_mask``), encoded as PDE,
and the removed valid pixels become the loss target.
"""

from dataclasses import dataclass
import math
from typing import Any, Dict, List, Optional

import numpy as np
import torch

from training.eval.completion_protocol import input_mask, InputPattern
from training.models import positional_depth_encoding, VanishingDepth
from training.models.completion_head import CompletionHead

MIN_INPUT_PIXELS = 20


def draw_pattern(rng: np.random.Generator, ccfg: Dict[str, Any]) -> InputPattern:
    """Draw one training input pattern: Perlin holes or a log-uniform number of points."""
    if rng.random() < ccfg['perlin_share']:
        low, high = ccfg['perlin_removed']
        return InputPattern('perlin', float(rng.uniform(low, high)))
    low, high = ccfg['points']
    return InputPattern('points', int(round(math.exp(rng.uniform(math.log(low),
                                                                 math.log(high))))))


def make_input(depth: np.ndarray, pattern: InputPattern, seed: int) -> Optional[np.ndarray]:
    """Return the input mask of one frame (None when it has too few valid pixels).

    A points pattern asking for more pixels than the frame has keeps all of them but one in
    ten (something must stay held out for the loss).
    """
    valid = int(np.count_nonzero(depth > 0.0))
    if valid < MIN_INPUT_PIXELS:
        return None
    if pattern.kind == 'points' and pattern.amount > 0.9 * valid:
        pattern = InputPattern('points', int(0.9 * valid))
    return input_mask(depth, pattern, seed)


@dataclass
class CompletionBatch:
    """Model inputs and loss target of a batch.

    Attributes:
        rgb: (B, 3, H, W) in [0, 1].
        pde: (B, C, H, W) PDE of the input depth.
        target: (B, 1, H, W) measured depth (metres).
        held_out: (B, 1, H, W) bool: valid in the target, not given as input.
        sparse: (B, H, W) numpy input depth (0 elsewhere), for the classical fills.
    """

    rgb: torch.Tensor
    pde: torch.Tensor
    target: torch.Tensor
    held_out: torch.Tensor
    sparse: np.ndarray


def build_batch(rgb: torch.Tensor, depth: torch.Tensor, patterns: List[InputPattern],
                seeds: List[int], model: VanishingDepth,
                device: torch.device) -> Optional[CompletionBatch]:
    """Mask each frame's depth as the completion protocol does and encode it as PDE.

    Args:
        rgb: (B, 3, H, W).
        depth: (B, 1, H, W) metres, 0 = invalid.
        patterns: One input pattern per frame.
        seeds: One mask seed per frame.
        model: Supplies the PDE parameters.
        device: Where the tensors go.

    Returns:
        The batch without the frames that have too few valid pixels, or None if none is left.
    """
    keep, masks = [], []
    depth_np = depth[:, 0].numpy()  # (B, H, W)
    for index, (pattern, seed) in enumerate(zip(patterns, seeds)):
        mask = make_input(depth_np[index], pattern, seed)
        if mask is not None:
            keep.append(index)
            masks.append(mask)
    if not keep:
        return None
    target = depth_np[keep]  # (B', H, W)
    given = np.stack(masks)  # (B', H, W)
    sparse = np.where(given, target, 0.0).astype(np.float32)
    pde = positional_depth_encoding(torch.from_numpy(sparse), model.pde_config)  # (B', C, H, W)
    held_out = torch.from_numpy((target > 0.0) & ~given)[:, None]
    return CompletionBatch(rgb[keep].to(device), pde.to(device),
                           torch.from_numpy(target)[:, None].to(device), held_out.to(device),
                           sparse)


def stream_batch(sample: Dict[str, Any], ccfg: Dict[str, Any], first: int,
                 model: VanishingDepth, device: torch.device) -> Optional[CompletionBatch]:
    """Build the batch of a stream's samples ``first ..``: patterns and masks seeded by position.

    Args:
        sample: A collated batch (``rgb``, ``depth``, ``valid``).
        ccfg: The ``completion`` section (``seed``, ``batch_size``, the pattern ranges).
        first: Stream position of the batch's first sample.
        model: Supplies the PDE parameters.
        device: Where the tensors go.
    """
    rngs = [np.random.default_rng([ccfg['seed'], 11, first + i])
            for i in range(ccfg['batch_size'])]
    return build_batch(sample['rgb'], sample['depth'] * sample['valid'],
                       [draw_pattern(rng, ccfg) for rng in rngs],
                       [int(rng.integers(2 ** 31)) for rng in rngs], model, device)


def complete(model: VanishingDepth, head: CompletionHead, batch: CompletionBatch):
    """Run the frozen model (no gradient) and the head; return (completed, decoder depth)."""
    completed, depth, _ = complete_with_scale(model, head, batch)
    return completed, depth


def complete_with_scale(model: VanishingDepth, head: CompletionHead, batch: CompletionBatch):
    """As :func:`complete`, plus the head's log uncertainty scale (None without a branch)."""
    with torch.no_grad():
        features = model.encode(batch.rgb, batch.pde)
        depth = model.decoder(features.maps, tuple(batch.rgb.shape[-2:]))[0]  # (B, 1, H, W)
    completed, log_scale = head.complete(batch.rgb, batch.pde, depth, features.maps[-1])
    return completed, depth, log_scale


def log_l1_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean |log pred - log target| over ``mask`` (a NaN when the mask is empty)."""
    diff = torch.log(pred.clamp_min(1e-3)) - torch.log(target.clamp_min(1e-3))
    return diff.abs()[mask].mean()


def rmse_mm(pred: np.ndarray, target: np.ndarray, mask: np.ndarray) -> float:
    """RMSE in millimetres over ``mask``."""
    return float(np.sqrt(np.mean((pred[mask] - target[mask]) ** 2)) * 1000.0)
