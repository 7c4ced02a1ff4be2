"""Vanishing Depth self-supervised pretraining (paper.md sections 4-5).

Usage::

    python -m training.train --config training/configs/smoke.yaml train.max_steps=100
    torchrun --standalone --nproc_per_node=8 -m training.train run.name=vits model.weights_path=..

The loop, top to bottom (``train``): build data (reproducible sample stream), model (frozen RGB
ViT + trainable adapter and decoder), AdamW + schedule, resume from the latest checkpoint; then
per optimiser step and micro-step: batch -> depth randomisation, corruption, masking, PDE ->
bf16 forward -> multi-scale SILog loss -> backward; a non-finite loss or gradient skips the
step (its BatchNorm statistics updates included); clip, step, schedule; log, plot, validate
and checkpoint at intervals. Outputs go to ``runs/<name>/`` (config.yaml, metrics.csv, tb/,
panels/, loss_curve.png, checkpoints/).
"""

import argparse
import contextlib
from dataclasses import dataclass, field
import logging
import math
import os
import time
from typing import Dict, List, Optional

from omegaconf import DictConfig
import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm import tqdm

from training.data.datasets import build_dataset, collate_common_keys
from training.data.masking import NoiseShift
from training.data.transforms import build_transform, TransformConfig
from training.engine import distributed
from training.engine.batch import PretrainBatchBuilder, PretrainInputs, step_seed
from training.engine.checkpoint import CheckpointManager, load_checkpoint
from training.engine.config import load_config, save_config, to_plain
from training.engine.flops import measure_flops, model_flops_utilization, peak_flops
from training.engine.metrics_log import MetricsLogger
from training.engine.plots import save_loss_curve, save_panel
from training.engine.rng_state import capture_rng_state, restore_rng_state
from training.engine.sample_stream import SeededTransformDataset, StreamSampler
from training.engine.schedule import build_scheduler
from training.losses import MultiScaleSILogLoss, NonFiniteLossError
from training.models import build_model

_logger = logging.getLogger('training.train')

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHECKPOINT_FORMAT = 'vd_ros.pretrain/1'
OK, EMPTY, NONFINITE = 0, 1, 2  # micro-step outcomes, max-reduced over ranks


class TrainingDiverged(RuntimeError):
    """Raised after ``train.max_consecutive_nonfinite`` non-finite steps in a row."""


@dataclass
class TrainResult:
    """What a call of ``train`` did.

    Attributes:
        run_dir: The run folder.
        start_step: First step of this invocation (> 0 after a resume).
        end_step: Steps completed when it returned.
        losses: Loss of every step of this invocation (NaN for skipped steps).
        skipped_steps: Steps skipped for a non-finite loss or gradient (whole run).
        images_per_second: Mean training throughput of this invocation (after warm-up).
        mfu: Model FLOPs utilisation (None on CPU / unknown GPUs).
        flops_per_image: Measured training FLOPs per image (None when not measured).
        last_checkpoint: Path of the newest checkpoint.
        model: The trained (unwrapped) model.
    """

    run_dir: str
    start_step: int
    end_step: int
    losses: List[float] = field(default_factory=list)
    skipped_steps: int = 0
    images_per_second: float = math.nan
    mfu: Optional[float] = None
    flops_per_image: Optional[float] = None
    last_checkpoint: Optional[str] = None
    model: Optional[torch.nn.Module] = None


def _resolve_data_root(path: str) -> str:
    """Resolve ``data.base_dir`` against the repository root when it is relative."""
    return path if os.path.isabs(path) else os.path.normpath(os.path.join(REPO_ROOT, path))


def _precision(cfg: DictConfig, device: torch.device) -> Optional[torch.dtype]:
    """Return the autocast dtype (None: full float32)."""
    choice = cfg.train.precision
    if choice == 'auto':
        choice = 'bf16' if device.type == 'cuda' else 'fp32'
    dtypes = {'bf16': torch.bfloat16, 'fp16': torch.float16, 'fp32': None}
    if choice not in dtypes:
        raise ValueError(f'train.precision must be auto, bf16, fp16 or fp32, got {choice!r}')
    return dtypes[choice]


def build_train_loader(cfg: DictConfig, info: distributed.DistInfo, start: int) -> DataLoader:
    """Build the DataLoader of the training stream, resuming at sample ``start`` of this rank.

    Args:
        cfg: The config.
        info: Rank and device.
        start: Samples of this rank's stream already consumed.

    Returns:
        An endless DataLoader of collated batches.
    """
    base_dir = _resolve_data_root(cfg.data.base_dir)
    mixed = build_dataset(cfg.data, transform=None, base_dir=base_dir)
    dataset = SeededTransformDataset(mixed, build_transform(cfg.data.transform, train=True),
                                     seed=cfg.run.seed)
    sampler = StreamSampler(mixed.sample_weights(), cfg.data.samples_per_epoch,
                            seed=cfg.run.seed, rank=info.rank, world_size=info.world_size,
                            start=start)
    workers = int(cfg.data.num_workers)
    extra = {'persistent_workers': bool(cfg.data.persistent_workers),
             'prefetch_factor': int(cfg.data.prefetch_factor)} if workers else {}
    return DataLoader(dataset, batch_size=cfg.train.batch_size, sampler=sampler,
                      num_workers=workers, collate_fn=collate_common_keys, drop_last=True,
                      pin_memory=bool(cfg.data.pin_memory) and info.device.type == 'cuda',
                      **extra)


def load_val_batches(cfg: DictConfig) -> List[dict]:
    """Load the fixed validation frames (evaluation transform) as a list of batches."""
    sources = cfg.val.sources if cfg.val.sources is not None else cfg.data.sources
    mixed = build_dataset({'sources': sources}, build_transform(cfg.data.transform, False),
                          base_dir=_resolve_data_root(cfg.data.base_dir))
    count = min(int(cfg.val.num_samples), len(mixed))
    indices = [int(i * len(mixed) / count) for i in range(count)]
    loader = DataLoader(torch.utils.data.Subset(mixed, indices), batch_size=cfg.val.batch_size,
                        collate_fn=collate_common_keys)
    return [{k: batch[k] for k in ('rgb', 'depth', 'valid')} for batch in loader]


@torch.no_grad()
def validate(model: torch.nn.Module, batches: List[dict], builder: PretrainBatchBuilder,
             loss_fn: MultiScaleSILogLoss, cfg: DictConfig, device: torch.device,
             autocast) -> float:
    """Return the mean loss over the validation frames and ``val.ratios`` (eval mode).

    Masks are seeded by (run seed, batch index, ratio index): identical at every validation.
    """
    model.eval()
    total, count = 0.0, 0
    for index, batch in enumerate(batches):
        for ratio_index, ratio in enumerate(cfg.val.ratios):
            seed = step_seed(cfg.run.seed, index, ratio_index)
            inputs = builder.eval_inputs(batch, ratio, seed, device)
            with autocast():
                depths = model(inputs.rgb, inputs.pde)['depths']
            out = loss_fn(depths, inputs.target, inputs.removed)
            if out is not None:
                total, count = total + out.loss.item(), count + 1
    model.train()
    return total / count if count else math.nan


def _synthetic_inputs(builder, batch_size, size, device) -> PretrainInputs:
    """Random RGB and 0.5-4.5 m depth of the training shape, half of it masked."""
    generator = torch.Generator(device='cpu').manual_seed(0)
    depth = 0.5 + 4.0 * torch.rand((batch_size, 1, *size), generator=generator)
    batch = {'rgb': torch.rand((batch_size, 3, *size), generator=generator),
             'depth': depth, 'valid': torch.ones_like(depth, dtype=torch.bool)}
    return builder.eval_inputs(batch, 0.5, 0, device)


@contextlib.contextmanager
def _leaves_no_trace(model: torch.nn.Module):
    """Restore the buffers (BatchNorm statistics) and drop the gradients of a probe step."""
    buffers = {name: value.clone() for name, value in model.named_buffers()}
    try:
        yield
    finally:
        model.zero_grad(set_to_none=True)
        with torch.no_grad():
            for name, value in model.named_buffers():
                value.copy_(buffers[name])


def _probe_step(model, inputs, loss_fn, autocast) -> None:
    """Run forward, loss and backward once."""
    with autocast():
        depths = model(inputs.rgb, inputs.pde)['depths']
    loss_fn(depths, inputs.target, inputs.removed).loss.backward()


def freeze_unreached_parameters(model, builder, loss_fn, autocast, size, device) -> List[str]:
    """Freeze the trainable parameters the pretraining loss does not reach; return their names.

    The loss reads the decoder's depths, which come from the fusion maps, so e.g. the depth
    branch's final norm (used only by ``features``/``cls``) and any block after the last
    fusion block get no gradient. They would never change anyway; freezing them keeps them out
    of AdamW and out of DDP's gradient reducer (which fails on parameters without a gradient).
    """
    inputs = _synthetic_inputs(builder, 2, size, device)
    with _leaves_no_trace(model):
        _probe_step(model, inputs, loss_fn, autocast)
        unreached = [name for name, param in model.named_parameters()
                     if param.requires_grad and param.grad is None]
    for name in unreached:
        model.get_parameter(name).requires_grad_(False)
    return unreached


def count_training_flops(model, builder, loss_fn, autocast, batch_size, size, device):
    """Measure FLOPs of one forward + loss + backward on a synthetic batch of the real shape.

    Buffers and gradients are restored afterwards: the measurement leaves no trace.

    Returns:
        (training FLOPs, forward-only FLOPs) for ``batch_size`` images.
    """
    inputs = _synthetic_inputs(builder, batch_size, size, device)

    def forward():
        with torch.no_grad(), autocast():
            model(inputs.rgb, inputs.pde)

    with _leaves_no_trace(model):
        train_flops = measure_flops(lambda: _probe_step(model, inputs, loss_fn, autocast))
        forward_flops = measure_flops(forward)
    return train_flops, forward_flops


def _checkpoint_state(core, optimizer, scheduler, scaler, noise_shift, cfg, step, consumed,
                      counters, info, val_loss) -> Dict[str, object]:
    """Assemble the checkpoint dict (format documented in training/README.md)."""
    return {
        'format': CHECKPOINT_FORMAT,
        'step': step,
        'model': core.state_dict(),
        'model_config': core.config,
        'config': to_plain(cfg),
        'optimizer': optimizer.state_dict(),
        'scheduler': scheduler.state_dict(),
        'scaler': scaler.state_dict() if scaler is not None else None,
        'noise_shift': noise_shift.state_dict(),
        'sampler': {'consumed': consumed, 'world_size': info.world_size,
                    'seed': int(cfg.run.seed)},
        'rng': distributed.all_gather_objects(capture_rng_state(), info),
        'counters': dict(counters),
        'val_loss': val_loss,
    }


def _find_resume(cfg: DictConfig, manager: CheckpointManager) -> Optional[str]:
    """Return the checkpoint to resume from, or None for a fresh run."""
    choice = cfg.train.resume
    if choice in (None, 'none', False):
        return None
    if choice == 'auto':
        return manager.latest()
    return str(choice)


def _micro_outcome(status: int, info: distributed.DistInfo) -> int:
    """Return the worst micro-step outcome over all ranks (the same decision everywhere)."""
    if not info.enabled:
        return status
    value = torch.tensor([status], device=info.device)
    torch.distributed.all_reduce(value, op=torch.distributed.ReduceOp.MAX)
    return int(value.item())


def train(cfg: DictConfig) -> TrainResult:
    """Run (or resume) pretraining as configured.

    Args:
        cfg: Resolved config (``training.engine.config.load_config``).

    Returns:
        What happened (see ``TrainResult``).

    Raises:
        TrainingDiverged: Too many non-finite steps in a row (a checkpoint is written first).
    """
    info = distributed.init_distributed(cfg.train.device)
    device = info.device
    if cfg.train.threads:
        torch.set_num_threads(int(cfg.train.threads))
    name = cfg.run.name or time.strftime('pretrain-%Y%m%d-%H%M%S')
    run_dir = os.path.join(cfg.run.out_dir, name)
    manager = CheckpointManager(os.path.join(run_dir, 'checkpoints'), cfg.checkpoint.keep_last)
    if info.is_main:
        save_config(cfg, os.path.join(run_dir, 'config.yaml'))

    # Model: every rank builds the same random initialisation from the run seed.
    torch.manual_seed(cfg.run.seed)
    core = build_model(cfg.model).to(device)
    if device.type == 'cuda' and cfg.train.channels_last:
        core = core.to(memory_format=torch.channels_last)
    core.train()
    max_steps = int(cfg.train.max_steps)
    amp_dtype = _precision(cfg, device)
    scaler = torch.amp.GradScaler(device.type) if amp_dtype == torch.float16 else None

    def autocast():
        return torch.autocast(device.type, dtype=amp_dtype or torch.float32,
                              enabled=amp_dtype is not None)

    shift_cfg = to_plain(cfg.masking.noise_shift)
    noise_shift = NoiseShift.from_fractions(
        max_steps, shift_cfg['warmup_fraction'], shift_cfg['end_fraction'],
        mu=tuple(shift_cfg['mu']), sigma=tuple(shift_cfg['sigma']), clip=tuple(shift_cfg['clip']))
    builder = PretrainBatchBuilder(core.pde_config, noise_shift, to_plain(cfg.depth),
                                   to_plain(cfg.masking))
    loss_fn = MultiScaleSILogLoss(**to_plain(cfg.loss))
    size = TransformConfig(size=to_plain(cfg.data.transform.size)).output_hw  # (H, W)
    unreached = freeze_unreached_parameters(core, builder, loss_fn, autocast, size, device)
    if unreached:
        _logger.info('frozen for pretraining (no gradient from the loss): %s', unreached)
    params = core.trainable_parameters()
    fused = device.type == 'cuda' and cfg.optim.fused in ('auto', True)
    optimizer = torch.optim.AdamW(params, lr=cfg.optim.lr, betas=tuple(cfg.optim.betas),
                                  weight_decay=cfg.optim.weight_decay, fused=fused or None)
    scheduler = build_scheduler(optimizer, cfg.optim.schedule, max_steps)

    # Resume: model, optimiser, schedule, scaler, noise shift, counters, sampler, RNG.
    start_step, consumed = 0, 0
    counters = {'nonfinite_total': 0, 'consecutive_nonfinite': 0, 'empty_micro_steps': 0}
    resume_path = _find_resume(cfg, manager)
    if resume_path:
        state = load_checkpoint(resume_path)
        if state.get('format') != CHECKPOINT_FORMAT:
            raise ValueError(f'{resume_path}: not a {CHECKPOINT_FORMAT} checkpoint '
                             f'(format {state.get("format")!r})')
        core.load_state_dict(state['model'])
        optimizer.load_state_dict(state['optimizer'])
        scheduler.load_state_dict(state['scheduler'])
        if scaler is not None and state['scaler'] is not None:
            scaler.load_state_dict(state['scaler'])
        noise_shift.load_state_dict(state['noise_shift'])
        counters.update(state['counters'])
        manager.best_metric = state['best_metric']
        start_step = int(state['step'])
        if state['sampler']['world_size'] == info.world_size:
            consumed = int(state['sampler']['consumed'])
            restore_rng_state(state['rng'][info.rank])
        else:
            consumed = start_step * cfg.train.batch_size * cfg.train.accum_steps
            _logger.warning('resuming on %d ranks from a %d-rank checkpoint: data order and '
                            'RNG states are not continued exactly', info.world_size,
                            state['sampler']['world_size'])
        _logger.info('resumed %s at step %d', resume_path, start_step)
    else:
        torch.manual_seed(cfg.run.seed + info.rank)
    stop_step = min(max_steps, int(cfg.train.stop_at_step or max_steps))

    # FLOPs: measured once on the unwrapped model, on the real per-rank micro-batch shape.
    flops_per_image = forward_flops_per_image = None
    if cfg.train.measure_flops:
        train_flops, forward_flops = count_training_flops(
            core, builder, loss_fn, autocast, cfg.train.batch_size, size, device)
        flops_per_image = train_flops / cfg.train.batch_size
        forward_flops_per_image = forward_flops / cfg.train.batch_size
        _logger.info('FLOPs per image: %.3f GFLOP training step (fwd + bwd), %.3f GFLOP '
                     'forward', flops_per_image / 1e9, forward_flops_per_image / 1e9)
    peak = peak_flops(device, cfg.train.peak_tflops)

    model = ddp = None
    if info.enabled:
        model = ddp = DistributedDataParallel(
            core, device_ids=[info.local_rank] if device.type == 'cuda' else None,
            find_unused_parameters=bool(cfg.train.find_unused_parameters))
    model = model or core
    if cfg.train.compile:
        model = torch.compile(model)

    loader = build_train_loader(cfg, info, consumed)
    batches = iter(loader)
    val_batches = load_val_batches(cfg) if cfg.val.enabled and info.is_main else []
    metrics = MetricsLogger(run_dir, bool(cfg.log.tensorboard),
                            start_step if resume_path else None) if info.is_main else None
    images_per_step = cfg.train.batch_size * cfg.train.accum_steps * info.world_size
    inject_loss = set(cfg.debug.inject_nan_steps)
    inject_grad = set(cfg.debug.inject_nan_grad_steps)
    result = TrainResult(run_dir, start_step, start_step, flops_per_image=flops_per_image)
    progress = tqdm(total=stop_step, initial=start_step, dynamic_ncols=True, unit='step',
                    disable=not (info.is_main and cfg.log.progress))
    step_times, val_loss, last_inputs, last_depths = [], math.nan, None, None
    generator = torch.Generator(device=device)
    _logger.info('training steps %d..%d of %d, %d images per step, run folder %s',
                 start_step, stop_step, max_steps, images_per_step, run_dir)

    buffers = list(core.buffers())  # BatchNorm statistics: a bad forward must not stick
    for step in range(start_step, stop_step):
        started = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        saved_buffers = [b.clone() for b in buffers]
        step_loss, backward_passes, outcome = 0.0, 0, OK
        for micro in range(cfg.train.accum_steps):
            batch = next(batches)  # consumed even when the step is skipped: exact resume
            consumed += cfg.train.batch_size
            if outcome == NONFINITE:
                continue
            generator.manual_seed(step_seed(cfg.run.seed, info.rank, step, micro))
            inputs: PretrainInputs = builder.train_inputs(batch, step, generator, device)
            last_sync = micro == cfg.train.accum_steps - 1
            sync = ddp.no_sync() if ddp is not None and not last_sync else \
                contextlib.nullcontext()
            with sync:
                with autocast():
                    depths = model(inputs.rgb, inputs.pde)['depths']
                try:
                    out = loss_fn(depths, inputs.target, inputs.removed)
                    loss = None if out is None else out.loss
                    if loss is not None and step in inject_loss:
                        loss = loss * math.nan
                    status = EMPTY if loss is None else \
                        (OK if torch.isfinite(loss) else NONFINITE)
                except NonFiniteLossError as error:
                    _logger.warning('step %d: %s', step, error)
                    status = NONFINITE
                status = _micro_outcome(status, info)
                if status == EMPTY:
                    counters['empty_micro_steps'] += 1
                    continue
                if status == NONFINITE:
                    outcome = NONFINITE
                    continue
                loss = loss / cfg.train.accum_steps
                (scaler.scale(loss) if scaler is not None else loss).backward()
                step_loss += loss.item()
                backward_passes += 1
            last_inputs, last_depths = inputs, depths[0].detach()

        grad_norm = math.nan
        if outcome == OK and backward_passes:
            if scaler is not None:
                scaler.unscale_(optimizer)
            if step in inject_grad:
                params[0].grad.fill_(math.nan)
            grad_norm = torch.nn.utils.clip_grad_norm_(
                params, cfg.train.grad_clip or math.inf).item()
            if scaler is not None:
                scaler.step(optimizer)  # skips by itself on fp16 overflow
                scaler.update()
            elif math.isfinite(grad_norm):
                optimizer.step()
            else:
                outcome = NONFINITE
        scheduler.step()
        if outcome == NONFINITE:
            with torch.no_grad():
                for buffer, saved in zip(buffers, saved_buffers):
                    buffer.copy_(saved)
            counters['nonfinite_total'] += 1
            counters['consecutive_nonfinite'] += 1
            result.losses.append(math.nan)
            _logger.warning('step %d skipped: non-finite %s (%d in a row, %d in total)', step,
                            'gradient' if backward_passes else 'loss',
                            counters['consecutive_nonfinite'], counters['nonfinite_total'])
        else:
            counters['consecutive_nonfinite'] = 0
            result.losses.append(step_loss * cfg.train.accum_steps / max(1, backward_passes)
                                 if backward_passes else math.nan)
        done = step + 1
        elapsed = time.perf_counter() - started
        step_times.append(elapsed)
        progress.update(1)
        result.end_step = done

        diverged = counters['consecutive_nonfinite'] >= cfg.train.max_consecutive_nonfinite
        checkpoint_due = done % cfg.checkpoint.every_steps == 0 or done == stop_step or diverged
        if checkpoint_due and val_batches and not diverged:
            val_loss = validate(core, val_batches, builder, loss_fn, cfg, device, autocast)
        log_due = done % cfg.log.every_steps == 0 or checkpoint_due
        if log_due:  # every rank joins the reduction
            mean_loss = distributed.all_reduce_mean(
                torch.tensor([result.losses[-1]], device=device), info).item()
        if info.is_main and log_due:
            images_per_s = images_per_step / elapsed
            row = {'loss': mean_loss, 'lr': scheduler.get_last_lr()[0],
                   'grad_norm': grad_norm, 'mask_mu': noise_shift.params(step)[0],
                   'images_per_s': images_per_s, 'skipped_total': counters['nonfinite_total'],
                   'step_s': elapsed, 'val_loss': val_loss if checkpoint_due else math.nan}
            if flops_per_image and peak:
                row['mfu'] = model_flops_utilization(flops_per_image * images_per_step /
                                                     info.world_size, 1.0 / elapsed, peak)
            metrics.log(done, row)
            progress.set_postfix(loss=f'{row["loss"]:.3f}', img_s=f'{images_per_s:.1f}')
        panel_due = cfg.log.panel_every_steps and (done % cfg.log.panel_every_steps == 0 or
                                                   done == stop_step)
        if info.is_main and panel_due and last_inputs is not None:
            rows = cfg.log.panel_rows
            os.makedirs(os.path.join(run_dir, 'panels'), exist_ok=True)
            save_panel(os.path.join(run_dir, 'panels', f'step_{done:08d}.png'),
                       last_inputs.rgb[:rows], last_inputs.input_depth[:rows],
                       last_depths[:rows, 0], last_inputs.target[:rows],
                       title=f'{name} step {done}')
            save_loss_curve(os.path.join(run_dir, 'loss_curve.png'), metrics.history,
                            title=f'{name}: {cfg.model.encoder}')
        if checkpoint_due:
            state = _checkpoint_state(core, optimizer, scheduler, scaler, noise_shift, cfg,
                                      done, consumed, counters, info, val_loss)
            if info.is_main:
                result.last_checkpoint = manager.save(
                    state, done, None if diverged else val_loss)
            distributed.barrier(info)
        if diverged:
            progress.close()
            message = (f'stopping: {counters["consecutive_nonfinite"]} consecutive steps with a '
                       f'non-finite loss or gradient (up to step {step}); the weights were not '
                       f'updated by them; last checkpoint: {result.last_checkpoint}')
            _logger.error(message)
            raise TrainingDiverged(message)

    progress.close()
    measured = step_times[min(len(step_times) - 1, max(2, len(step_times) // 10)):]
    if measured:
        step_seconds = sum(measured) / len(measured)
        result.images_per_second = images_per_step / step_seconds
        if flops_per_image and peak:
            result.mfu = model_flops_utilization(
                flops_per_image * images_per_step / info.world_size, 1.0 / step_seconds, peak)
    result.skipped_steps = counters['nonfinite_total']
    result.model = core
    if info.is_main:
        metrics.close()
        _logger.info('done: steps %d..%d, %.2f images/s%s, %d skipped steps, run folder %s',
                     start_step, result.end_step, result.images_per_second,
                     f', MFU {100 * result.mfu:.1f} %' if result.mfu is not None else '',
                     result.skipped_steps, run_dir)
    distributed.cleanup_distributed(info)
    return result


def parse_args(argv=None) -> argparse.Namespace:
    """Parse ``--config FILE`` (repeatable) and ``key=value`` overrides."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--config', action='append', default=[],
                        help='override YAML merged on top of training/configs/default.yaml')
    parser.add_argument('overrides', nargs='*', help='key=value (OmegaConf dotlist)')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    """Command-line entry point; returns the exit code."""
    logging.basicConfig(level=logging.INFO, format='%(asctime)s %(levelname)s %(name)s: '
                        '%(message)s')
    args = parse_args(argv)
    cfg = load_config(args.config, args.overrides)
    try:
        train(cfg)
    except TrainingDiverged:
        return 3
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
