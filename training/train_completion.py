r"""Train the depth-completion head on the frozen Vanishing Depth model, for a wall-time budget.

Usage::

    python -m training.train_completion --config training/configs/cpu.yaml \\
        --checkpoint runs/cpu/checkpoints/best.pt [--minutes 20] [--out-dir runs/completion] \\
        [key=value ...]

Settings: ``training/configs/completion.yaml`` (section ``completion``), merged over
``default.yaml`` and the ``--config`` files, which give the model and the training frames
(``data.sources``; ``holdout.sources`` are never read). The encoder, adapter and decoder are
frozen; only ``training.models.completion_head.CompletionHead`` trains. Each step draws frames
from the weighted, resumable sample stream (``training.engine.sample_stream``), makes each one's
input as the completion protocol does (``training.eval.completion_protocol.input_mask``: either
100-2000 random valid points or Perlin holes over 30-70 % of the valid pixels), runs the frozen
model on it and trains the head with an L1 loss on log depth over the removed valid pixels.
The learning rate warms up, then follows a cosine over the time budget (``--minutes``, counted
over resumes). ``completion.val_frames`` frames of the training sources are set aside (never
drawn for training) and scored every ``val_every_steps`` steps: RMSE (mm, model resolution) of
the head, of its base (the locally aligned decoder depth), of the push-pull fill and of the
linear (Delaunay) fill, on fixed inputs. A non-finite loss or gradient skips the step; too many
in a row stop the run. Checkpoints are atomic (``training.engine.checkpoint``); the last one is
the one to export (``training.export_onnx --completion-head``).
"""

import argparse
from dataclasses import dataclass, field
import logging
import math
import os
import sys
import time
from typing import Any, Dict, List, Optional

import numpy as np
from omegaconf import OmegaConf
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from training.checkpoint_match import build_checked_model
from training.completion_checkpoint import CHECKPOINT_FORMAT
from training.data.datasets import build_dataset, collate_common_keys
from training.data.shared_paths import report_path, resolve_data_root
from training.data.transforms import build_transform
from training.engine.checkpoint import CheckpointManager, load_checkpoint
from training.engine.config import load_config_with_section, save_config
from training.engine.sample_stream import SeededTransformDataset, StreamSampler
from training.eval.completion_baselines import linear_fill
from training.eval.completion_protocol import input_mask, InputPattern
from training.models import positional_depth_encoding, VanishingDepth
from training.models.completion_head import build_completion_head, CompletionHead
from training.train import TrainingDiverged

_logger = logging.getLogger('training.train_completion')

COMPLETION_CONFIG = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'configs',
                                 'completion.yaml')
MIN_INPUT_PIXELS = 20
VAL_METHODS = ('head', 'local', 'push-pull fill', 'linear fill')


def load_completion_config(files: List[str], overrides: List[str]) -> Dict[str, Any]:
    """Merge default.yaml, completion.yaml, ``files`` and ``key=value`` overrides.

    Raises:
        ValueError: An unknown key or a bad override.
    """
    return load_config_with_section(COMPLETION_CONFIG, 'completion', files, overrides)


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


def complete(model: VanishingDepth, head: CompletionHead, batch: CompletionBatch):
    """Run the frozen model (no gradient) and the head; return (completed, head maps)."""
    with torch.no_grad():
        features = model.encode(batch.rgb, batch.pde)
        depth = model.decoder(features.maps, tuple(batch.rgb.shape[-2:]))[0]  # (B, 1, H, W)
    return head(batch.rgb, batch.pde, depth, features.maps[-1]), depth


def log_l1_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean |log pred - log target| over ``mask`` (a NaN when the mask is empty)."""
    diff = torch.log(pred.clamp_min(1e-3)) - torch.log(target.clamp_min(1e-3))
    return diff.abs()[mask].mean()


def _rmse_mm(pred: np.ndarray, target: np.ndarray, mask: np.ndarray) -> float:
    """RMSE in millimetres over ``mask``."""
    return float(np.sqrt(np.mean((pred[mask] - target[mask]) ** 2)) * 1000.0)


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
            _rmse_mm(linear_fill(batch.sparse[i]), target[i], held[i]) if held[i].any()
            else None for i in range(target.shape[0])]
    return val


@torch.no_grad()
def validate(model: VanishingDepth, head: CompletionHead, val: ValSet) -> Dict[str, float]:
    """Mean per-frame RMSE (mm) of the head, its base and the two fills, per input pattern."""
    head.eval()
    row = {}
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
                scores[method].append(_rmse_mm(pred[i], target[i], held[i]))
            scores['linear fill'].append(linear)
        for method, values in scores.items():
            row[f'{name} {method}'] = float(np.mean(values)) if values else math.nan
    head.train()
    return row


def format_val(row: Dict[str, float]) -> str:
    """One log line: per pattern, head / local / push-pull / linear RMSE in mm."""
    names = dict.fromkeys(key.rsplit(' ', 1)[0] for key in row if key.endswith(' head'))
    parts = []
    for name in names:
        values = ' / '.join(f'{row[f"{name} {m}"]:.1f}' for m in VAL_METHODS)
        parts.append(f'{name}: {values}')
    return 'val RMSE mm (head / local / push-pull / linear): ' + '; '.join(parts)


def learning_rate(ccfg: Dict[str, Any], step: int, elapsed_s: float) -> float:
    """Warm-up over steps, then cosine over the time budget down to ``final_lr_fraction``."""
    warm = min(1.0, (step + 1) / max(1, ccfg['warmup_steps']))
    progress = min(1.0, elapsed_s / (60.0 * ccfg['minutes']))
    final = ccfg['final_lr_fraction']
    cosine = 0.5 * (1.0 + math.cos(math.pi * progress))
    return ccfg['lr'] * warm * (final + (1.0 - final) * cosine)


@dataclass
class Progress:
    """How far a run is (saved in every checkpoint).

    Attributes:
        step: Optimiser steps done (skipped ones included).
        consumed: Samples of the stream drawn so far.
        elapsed_s: Training wall time so far, over resumes.
        nonfinite_total: Steps skipped for a non-finite loss or gradient.
        consecutive_nonfinite: Of those, in a row up to now.
        val_history: Validation rows with their step.
    """

    step: int = 0
    consumed: int = 0
    elapsed_s: float = 0.0
    nonfinite_total: int = 0
    consecutive_nonfinite: int = 0
    val_history: List[Dict[str, float]] = field(default_factory=list)


def checkpoint_state(head: CompletionHead, optimizer: torch.optim.Optimizer, progress: Progress,
                     cfg: Dict[str, Any], encoder: Dict[str, Any]) -> Dict[str, Any]:
    """Assemble the checkpoint dict (``training.completion_checkpoint`` reads it)."""
    return {'format': CHECKPOINT_FORMAT, 'step': progress.step, 'head': head.state_dict(),
            'head_config': dict(head.config), 'optimizer': optimizer.state_dict(),
            'progress': {k: v for k, v in vars(progress).items() if k != 'val_history'},
            'val_history': list(progress.val_history), 'encoder': encoder, 'config': cfg}


def _read_head_state(path: str, encoder: Dict[str, Any], same_step: bool = True
                     ) -> Dict[str, Any]:
    """Load a completion checkpoint, made on this run's pretraining step if ``same_step``.

    Raises:
        ValueError: Not a completion checkpoint, or (``same_step``) one trained on another
            pretraining step.
    """
    state = load_checkpoint(path)
    if state.get('format') != CHECKPOINT_FORMAT:
        raise ValueError(f'{path}: not a {CHECKPOINT_FORMAT} checkpoint')
    if same_step and state['encoder']['step'] != encoder['step']:
        raise ValueError(f'{path} trained the head on pretraining step '
                         f'{state["encoder"]["step"]}, this run uses step {encoder["step"]}; '
                         'use a new completion.out_dir')
    return state


def resume(path: Optional[str], head: CompletionHead, optimizer: torch.optim.Optimizer,
           encoder: Dict[str, Any], init_from: Optional[str] = None) -> Progress:
    """Restore head, optimiser and progress from ``path``, else start a fresh ``Progress``.

    A fresh run takes the head weights of ``init_from`` (a warm start: new optimiser,
    schedule and step count) when it is given; that head may come from another pretraining
    step of the same architecture (a head carried over to a further-pretrained encoder).

    Raises:
        ValueError: Not a completion checkpoint, or a resume from one trained on another
            pretraining step.
    """
    if not path:
        if init_from:
            state = _read_head_state(init_from, encoder, same_step=False)
            head.load_state_dict(state['head'])
            _logger.info('warm start: head weights of %s (trained on pretraining step %s, '
                         'this run uses step %s), fresh optimiser and schedule', init_from,
                         state['encoder']['step'], encoder['step'])
        return Progress()
    state = _read_head_state(path, encoder)
    head.load_state_dict(state['head'])
    optimizer.load_state_dict(state['optimizer'])
    progress = Progress(**state['progress'], val_history=list(state['val_history']))
    _logger.info('resumed %s at step %d (%.1f min trained)', path, progress.step,
                 progress.elapsed_s / 60.0)
    return progress


def split_frames(mixed, count: int):
    """Set aside ``count`` evenly spaced frames; return (their indices, training weights)."""
    weights = mixed.sample_weights().clone()  # (N,)
    count = min(int(count), len(mixed) // 10)
    indices = [int(i * len(mixed) / count) for i in range(count)] if count > 0 else []
    weights[indices] = 0.0
    return indices, weights


def train_step(model, head, optimizer, batch: CompletionBatch, ccfg, progress: Progress,
               inject_nan: bool) -> float:
    """One optimiser step; returns the loss (NaN when skipped as non-finite)."""
    completed, _ = complete(model, head, batch)
    loss = log_l1_loss(completed, batch.target, batch.held_out)
    if inject_nan:
        loss = loss * math.nan
    optimizer.zero_grad(set_to_none=True)
    finite = bool(torch.isfinite(loss))
    if finite:
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(head.parameters(), ccfg['grad_clip'])
        finite = bool(torch.isfinite(norm))
    if not finite:
        optimizer.zero_grad(set_to_none=True)
        progress.nonfinite_total += 1
        progress.consecutive_nonfinite += 1
        _logger.warning('step %d skipped: non-finite loss or gradient (%d in a row)',
                        progress.step, progress.consecutive_nonfinite)
        return math.nan
    optimizer.step()
    progress.consecutive_nonfinite = 0
    return loss.item()


def run(args: argparse.Namespace) -> Progress:
    """Train (or resume) the head as configured; returns the progress at the end."""
    overrides = list(args.overrides)
    if args.minutes is not None:
        overrides.append(f'completion.minutes={args.minutes}')
    if args.out_dir is not None:
        overrides.append(f'completion.out_dir={args.out_dir}')
    if args.checkpoint is not None:
        overrides.append(f'completion.checkpoint={args.checkpoint}')
    cfg = load_completion_config(args.config, overrides)
    ccfg = cfg['completion']
    if ccfg['threads']:
        torch.set_num_threads(int(ccfg['threads']))
    device = torch.device(('cuda' if torch.cuda.is_available() else 'cpu')
                          if ccfg['device'] == 'auto' else ccfg['device'])
    model, loaded = build_checked_model(cfg['model'], ccfg['checkpoint'], ccfg['seed'])
    if loaded is None:
        _logger.warning('no completion.checkpoint: the head trains on a RANDOMLY INITIALISED '
                        'model (tests only)')
    model.to(device).requires_grad_(False)
    encoder = {'checkpoint': report_path(ccfg['checkpoint']) if ccfg['checkpoint'] else None,
               'step': loaded.step if loaded is not None else None,
               'model_config': model.config}
    torch.manual_seed(ccfg['seed'])
    head = build_completion_head(model, ccfg['head']).to(device).train()
    optimizer = torch.optim.AdamW(head.parameters(), lr=ccfg['lr'],
                                  weight_decay=ccfg['weight_decay'])
    manager = CheckpointManager(os.path.join(ccfg['out_dir'], 'checkpoints'), ccfg['keep_last'])
    save_config(OmegaConf.create(cfg), os.path.join(ccfg['out_dir'], 'config.yaml'))
    resume_path = None if ccfg['resume'] in (None, 'none', False) else (
        manager.latest() if ccfg['resume'] == 'auto' else ccfg['resume'])
    progress = resume(resume_path, head, optimizer, encoder, ccfg['init_from'])

    base_dir = resolve_data_root(cfg['data']['base_dir'])
    mixed = build_dataset({'sources': cfg['data']['sources']}, None, base_dir=base_dir)
    val_indices, weights = split_frames(mixed, ccfg['val_frames'])
    val = build_val_set(mixed, val_indices, cfg, model, device)
    transform = build_transform({**cfg['data']['transform'], **ccfg['transform']}, train=True)
    workers = int(cfg['data']['num_workers'])
    loader = DataLoader(
        SeededTransformDataset(mixed, transform, seed=ccfg['seed']),
        batch_size=ccfg['batch_size'], collate_fn=collate_common_keys, drop_last=True,
        sampler=StreamSampler(weights, cfg['data']['samples_per_epoch'], seed=ccfg['seed'],
                              start=progress.consumed),
        num_workers=workers, persistent_workers=workers > 0)
    _logger.info('%d training frames (%d set aside for validation), head %d parameters, '
                 'budget %.1f min, from step %d', len(mixed) - len(val_indices),
                 len(val_indices), sum(p.numel() for p in head.parameters()), ccfg['minutes'],
                 progress.step)
    bar = tqdm(total=int(60 * ccfg['minutes']), initial=int(progress.elapsed_s), unit='s',
               dynamic_ncols=True, desc='completion head')
    inject = set(cfg['debug']['inject_nan_steps'])
    batches, losses = iter(loader), []
    while progress.elapsed_s < 60.0 * ccfg['minutes'] and (
            ccfg['max_steps'] is None or progress.step < ccfg['max_steps']):
        started = time.perf_counter()
        sample = next(batches)
        first = progress.consumed
        progress.consumed += ccfg['batch_size']
        rngs = [np.random.default_rng([ccfg['seed'], 11, first + i])
                for i in range(ccfg['batch_size'])]
        batch = build_batch(sample['rgb'], sample['depth'] * sample['valid'],
                            [draw_pattern(rng, ccfg) for rng in rngs],
                            [int(rng.integers(2 ** 31)) for rng in rngs], model, device)
        for group in optimizer.param_groups:
            group['lr'] = learning_rate(ccfg, progress.step, progress.elapsed_s)
        loss = math.nan if batch is None else train_step(
            model, head, optimizer, batch, ccfg, progress, progress.step in inject)
        losses.append(loss)
        progress.step += 1
        seconds = time.perf_counter() - started
        progress.elapsed_s += seconds
        started = time.perf_counter()
        if progress.consecutive_nonfinite >= cfg['train']['max_consecutive_nonfinite']:
            manager.save(checkpoint_state(head, optimizer, progress, cfg, encoder), progress.step)
            raise TrainingDiverged(f'stopping: {progress.consecutive_nonfinite} non-finite steps '
                                   f'in a row up to step {progress.step}')
        done = progress.elapsed_s >= 60.0 * ccfg['minutes'] or progress.step == ccfg['max_steps']
        if progress.step % ccfg['log_every_steps'] == 0 or done:
            recent = [v for v in losses[-ccfg['log_every_steps']:] if math.isfinite(v)]
            _logger.info('step %d: loss %.4f, lr %.2e, %.2f s/step, %.1f/%.1f min',
                         progress.step, float(np.mean(recent)) if recent else math.nan,
                         optimizer.param_groups[0]['lr'], seconds, progress.elapsed_s / 60.0,
                         ccfg['minutes'])
            bar.set_postfix(loss=f'{np.mean(recent) if recent else math.nan:.4f}')
        if val.batches and (progress.step % ccfg['val_every_steps'] == 0 or done):
            row = validate(model, head, val)
            progress.val_history.append({'step': progress.step, **row})
            _logger.info('step %d %s', progress.step, format_val(row))
        if progress.step % ccfg['checkpoint_every_steps'] == 0 or done:
            manager.save(checkpoint_state(head, optimizer, progress, cfg, encoder), progress.step)
        progress.elapsed_s += time.perf_counter() - started  # validation and checkpoint
        bar.update(int(progress.elapsed_s) - bar.n)
    bar.close()
    _logger.info('done at step %d (%.1f min); checkpoint %s', progress.step,
                 progress.elapsed_s / 60.0, manager.latest())
    return progress


def parse_args(argv: List[str]) -> argparse.Namespace:
    """Parse the command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--config', action='append', default=[],
                        help='YAML merged over default.yaml + completion.yaml (repeatable)')
    parser.add_argument('--checkpoint', help='pretraining checkpoint of the frozen model')
    parser.add_argument('--minutes', type=float, help='wall-time budget (completion.minutes)')
    parser.add_argument('--out-dir', help='run folder (completion.out_dir)')
    parser.add_argument('overrides', nargs='*', help='config overrides key=value')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    """Command-line entry point; returns the exit status."""
    logging.basicConfig(level=logging.INFO, format='%(asctime)s %(name)s: %(message)s')
    try:
        run(parse_args(sys.argv[1:] if argv is None else argv))
    except TrainingDiverged as error:
        _logger.error('%s', error)
        return 3
    return 0


if __name__ == '__main__':
    sys.exit(main())
