"""Completion-head validation: fixed inputs on set-aside frames, RMSE against the fills."""

from dataclasses import dataclass, field
import math
from typing import Any, Dict, List, Optional

import numpy as np
import torch

from training.data.transforms import build_transform
from training.engine.completion_batch import build_batch, complete, CompletionBatch, rmse_mm
from training.engine.evaluating import evaluating
from training.eval.completion_baselines import linear_fill
from training.eval.completion_protocol import InputPattern
from training.models import VanishingDepth
from training.models.completion_head import CompletionHead

VAL_METHODS = ('head', 'local', 'push-pull fill', 'linear fill')


@dataclass
class ValSet:
    """Fixed validation batches: frames set aside from the training sources, fixed inputs.

    Attributes:
        batches: Per pattern name, the batch of every validation frame.
        linear_rmse: Per pattern name, the linear fill's RMSE (mm) of every frame (None where
            nothing is held out); it never changes, so it is computed once.
    """

    batches: Dict[str, CompletionBatch] = field(default_factory=dict)
    linear_rmse: Dict[str, List[Optional[float]]] = field(default_factory=dict)


def build_val_set(mixed, indices: List[int], cfg: Dict[str, Any], model: VanishingDepth,
                  device: torch.device) -> ValSet:
    """Load the set-aside frames (evaluation transform) and draw their fixed inputs."""
    if not indices:
        return ValSet()
    transform = build_transform(cfg['data']['transform'], train=False)
    samples = [transform(mixed[index]) for index in indices]
    rgb = torch.stack([s['rgb'] for s in samples])  # (N, 3, H, W)
    depth = torch.stack([s['depth'] * s['valid'] for s in samples])  # (N, 1, H, W)
    ccfg = cfg['completion']
    patterns = [InputPattern('points', n) for n in ccfg['val_points']] + \
        [InputPattern('perlin', 0.5)]
    val = ValSet()
    for number, pattern in enumerate(patterns):
        seeds = [int(np.random.SeedSequence([ccfg['seed'], 7, number, i]).generate_state(1)[0])
                 for i in range(len(indices))]
        batch = build_batch(rgb, depth, [pattern] * len(indices), seeds, model, device)
        if batch is None:
            continue
        val.batches[pattern.name] = batch
        target = batch.target[:, 0].cpu().numpy()
        held = batch.held_out[:, 0].cpu().numpy()
        val.linear_rmse[pattern.name] = [
            rmse_mm(linear_fill(batch.sparse[i]), target[i], held[i]) if held[i].any()
            else None for i in range(target.shape[0])]
    return val


def validate(model: VanishingDepth, head: CompletionHead, val: ValSet) -> Dict[str, float]:
    """Mean per-frame RMSE (mm) of the head, its base and the two fills, per input pattern."""
    row = {}
    with evaluating(model, head):
        for name, batch in val.batches.items():
            completed, depth = complete(model, head, batch)
            maps = head.maps(batch.pde, depth)
            base, fill = torch.exp(maps.local_log), torch.exp(maps.fill_log)
            target = batch.target[:, 0].cpu().numpy()
            held = batch.held_out[:, 0].cpu().numpy()
            preds = {'head': completed[:, 0].cpu().numpy(), 'local': base[:, 0].cpu().numpy(),
                     'push-pull fill': fill[:, 0].cpu().numpy()}
            scores = {method: [] for method in VAL_METHODS}
            for i, linear in enumerate(val.linear_rmse[name]):
                if linear is None:
                    continue
                for method, pred in preds.items():
                    scores[method].append(rmse_mm(pred[i], target[i], held[i]))
                scores['linear fill'].append(linear)
            for method, values in scores.items():
                row[f'{name} {method}'] = float(np.mean(values)) if values else math.nan
    return row


def format_val(row: Dict[str, float]) -> str:
    """One log line: per pattern, head / local / push-pull / linear RMSE in mm."""
    names = dict.fromkeys(key.rsplit(' ', 1)[0] for key in row if key.endswith(' head'))
    parts = []
    for name in names:
        values = ' / '.join(f'{row[f"{name} {m}"]:.1f}' for m in VAL_METHODS)
        parts.append(f'{name}: {values}')
    return 'val RMSE mm (head / local / push-pull / linear): ' + '; '.join(parts)
