"""Depth-completion protocol in the style of VOID on real 7-Scenes and YCB-Video frames.

From each frame's measured depth an input is drawn, either N valid points uniformly at random
(VOID's 1500 / 500 / 150 densities) or the measured depth with Perlin-shaped holes (the
pretraining masks of ``training.data.masking``). Every method completes the same input to a
dense map; it is scored on the held-out pixels only: valid in the measured depth and not given
as input. Inputs are seeded per (seed, frame, pattern), so all methods see identical inputs.
"""

import dataclasses
import logging
import time
from typing import Callable

import numpy as np
import torch

from training.data.masking import sample_masks, sparsify_depth
from training.eval.completion_baselines import BASELINES
from training.eval.frames import RGBDFrame
from training.eval.metrics import depth_completion_metrics, mean_metrics

_logger = logging.getLogger(__name__)

CompletionMethod = Callable[[RGBDFrame, np.ndarray], np.ndarray]


@dataclasses.dataclass(frozen=True)
class InputPattern:
    """How the input of a completion method is drawn from the measured depth.

    Attributes:
        kind: 'points' (keep ``amount`` random valid pixels) or 'perlin' (remove the
            ``amount`` share of valid pixels in Perlin-noise blobs).
        amount: Number of points, or the removed fraction in (0, 1).
    """

    kind: str
    amount: float

    def __post_init__(self):
        """Validate the pattern."""
        if self.kind == 'points' and (self.amount < 1 or self.amount != int(self.amount)):
            raise ValueError(f'points pattern needs a positive integer count, got {self.amount}')
        if self.kind == 'perlin' and not 0.0 < self.amount < 1.0:
            raise ValueError(f'perlin pattern needs a removed fraction in (0, 1), '
                             f'got {self.amount}')
        if self.kind not in ('points', 'perlin'):
            raise ValueError(f"pattern kind must be 'points' or 'perlin', got {self.kind!r}")

    @property
    def name(self) -> str:
        """Short label for tables, e.g. '1500 pts' or 'perlin 50%'."""
        if self.kind == 'points':
            return f'{int(self.amount)} pts'
        return f'perlin {round(100 * self.amount)}%'


DEFAULT_PATTERNS = (InputPattern('points', 1500), InputPattern('points', 500),
                    InputPattern('points', 150), InputPattern('perlin', 0.5))


def input_mask(depth_m: np.ndarray, pattern: InputPattern, seed: int) -> np.ndarray:
    """Draw the pixels given to the methods as input.

    Args:
        depth_m: (H, W) measured depth in metres, 0 = invalid.
        pattern: How to draw the input.
        seed: Seed of the torch generator used by the masking functions.

    Returns:
        Boolean (H, W) input mask, a subset of the valid pixels.

    Raises:
        ValueError: If the frame has fewer valid pixels than the pattern asks for.
    """
    valid = depth_m > 0.0
    generator = torch.Generator().manual_seed(seed)
    depth = torch.from_numpy(np.ascontiguousarray(depth_m, np.float32))[None]  # (1, H, W)
    if pattern.kind == 'points':
        if valid.sum() < pattern.amount:
            raise ValueError(f'frame has {int(valid.sum())} valid pixels, fewer than the '
                             f'{int(pattern.amount)} input points asked for')
        return sparsify_depth(depth, int(pattern.amount), generator)[0].numpy() > 0.0
    removed = sample_masks(torch.from_numpy(valid)[None], torch.tensor([pattern.amount]),
                           generator, perlin_prob=1.0)[0].numpy()  # (H, W)
    return valid & ~removed


@dataclasses.dataclass
class CompletionRecord:
    """Scores of one method on one frame and input pattern.

    Attributes:
        dataset: '7scenes' or 'ycbv'.
        frame: Frame name.
        pattern: Pattern name.
        method: Method name.
        metrics: Output of ``depth_completion_metrics``.
        seconds: Wall time of the method on this input.
        num_input: Input pixels.
        num_eval: Scored pixels.
    """

    dataset: str
    frame: str
    pattern: str
    method: str
    metrics: dict
    seconds: float
    num_input: int
    num_eval: int


def complete_frame(frame: RGBDFrame, pattern: InputPattern, methods: dict[str, CompletionMethod],
                   seed: int) -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, float]]:
    """Run every method on one frame's input.

    Args:
        frame: The frame.
        pattern: Input pattern.
        methods: Name -> method taking (frame, sparse depth in metres with 0 elsewhere).
        seed: Input seed.

    Returns:
        (input mask, name -> dense prediction (H, W) metres, name -> seconds).

    Raises:
        ValueError: If a method returns a map of another shape.
    """
    mask = input_mask(frame.depth_m, pattern, seed)
    sparse = np.where(mask, frame.depth_m, 0.0).astype(np.float32)
    predictions, seconds = {}, {}
    for name, method in methods.items():
        start = time.perf_counter()
        predictions[name] = method(frame, sparse)
        seconds[name] = time.perf_counter() - start
        if predictions[name].shape != sparse.shape:
            raise ValueError(f'method {name} returned shape {predictions[name].shape}, '
                             f'expected {sparse.shape}')
    return mask, predictions, seconds


def baseline_methods() -> dict[str, CompletionMethod]:
    """Return the classical baselines as completion methods (they ignore the colour image)."""
    def depth_only(fill: Callable[[np.ndarray], np.ndarray]) -> CompletionMethod:
        return lambda frame, sparse_m: fill(sparse_m)
    return {name: depth_only(fill) for name, fill in BASELINES.items()}


def pattern_seed(seed: int, frame_index: int, pattern_index: int) -> int:
    """Return the input seed of one (frame, pattern) cell of the protocol."""
    return int(np.random.SeedSequence([seed, frame_index, pattern_index]).generate_state(1)[0])


def run_completion_protocol(frames: list[RGBDFrame], methods: dict[str, CompletionMethod],
                            patterns: tuple[InputPattern, ...] = DEFAULT_PATTERNS,
                            seed: int = 0) -> list[CompletionRecord]:
    """Score every method on every frame and pattern with identical inputs.

    Args:
        frames: Evaluation frames.
        methods: Name -> completion method.
        patterns: Input patterns.
        seed: Base seed.

    Returns:
        One record per frame, pattern and method.
    """
    records = []
    for frame_index, frame in enumerate(frames):
        _logger.info('completion frame %d/%d: %s', frame_index + 1, len(frames), frame.name)
        valid = frame.depth_m > 0.0
        for pattern_index, pattern in enumerate(patterns):
            mask, predictions, seconds = complete_frame(
                frame, pattern, methods, pattern_seed(seed, frame_index, pattern_index))
            held_out = valid & ~mask
            for name, prediction in predictions.items():
                records.append(CompletionRecord(
                    frame.dataset, frame.name, pattern.name, name,
                    depth_completion_metrics(prediction, frame.depth_m, held_out),
                    seconds[name], int(mask.sum()), int(held_out.sum())))
    return records


def summarize_completion(records: list[CompletionRecord]) -> list[dict]:
    """Average records per (dataset, pattern, method), in first-seen order.

    Args:
        records: Output of ``run_completion_protocol``.

    Returns:
        Rows with dataset, pattern, method, frames, mean metrics and mean seconds.
    """
    groups: dict[tuple[str, str, str], list[CompletionRecord]] = {}
    for record in records:
        groups.setdefault((record.dataset, record.pattern, record.method), []).append(record)
    rows = []
    for (dataset, pattern, method), group in groups.items():
        row = {'dataset': dataset, 'pattern': pattern, 'method': method, 'frames': len(group)}
        row.update(mean_metrics([record.metrics for record in group]))
        row['seconds'] = float(np.mean([record.seconds for record in group]))
        rows.append(row)
    return rows
