"""Vanishing Depth self-supervised pretraining (paper.md sections 4-5).

Usage::

    python -m training.train --config training/configs/smoke.yaml train.max_steps=100
    torchrun --standalone --nproc_per_node=8 -m training.train run.name=vits model.weights_path=..

``train`` reads top to bottom: ``start_run`` (run folder, config.yaml), ``build_training``
(frozen RGB ViT + trainable adapter and decoder, loss, AdamW + schedule), ``resume_training``
(model, optimiser, sampler and RNG from the latest checkpoint), data (a reproducible sample
stream); then per optimiser step ``train_step``: per micro-step batch -> depth randomisation,
corruption, masking, PDE -> bf16 forward -> multi-scale SILog loss -> backward; a non-finite
loss or gradient skips the step (its BatchNorm statistics updates included); clip, step,
schedule. At intervals: ``validate``, ``log_metrics``, ``save_panels``, ``save_checkpoint``.
Outputs go to ``runs/<name>/`` (config.yaml, metrics.csv, tb/, panels/, loss_curve.png,
checkpoints/).
"""

import argparse
import contextlib
from dataclasses import dataclass, field
import logging
import math
import os
import time
from typing import Callable, Dict, List, Optional

from omegaconf import DictConfig
import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm import tqdm

from training.checkpoint.files import CheckpointManager
from training.checkpoint.pretrain import pretrain_state, read_pretrain
from training.data.datasets import build_dataset, collate_common_keys
from training.data.masking import NoiseShift
from training.data.shared_paths import resolve_data_root
from training.data.transforms import build_transform, TransformConfig
from training.engine import distributed
from training.engine.batch import PretrainBatchBuilder, PretrainInputs, step_seed
from training.engine.config import load_config, save_config, to_plain
from training.engine.divergence import fresh_counts, NonFiniteGuard, TrainingDiverged
from training.engine.evaluating import evaluating
from training.engine.flops import measure_flops, model_flops_utilization, peak_flops
from training.engine.metrics_log import MetricsLogger
from training.engine.plots import save_loss_curve, save_panel
from training.engine.progress import Progress, progress_bar
from training.engine.resume import resume_path
from training.engine.rng_state import capture_rng_state, restore_rng_state
from training.engine.sample_stream import SeededTransformDataset, StreamSampler
from training.engine.schedule import build_scheduler
from training.losses import MultiScaleSILogLoss, NonFiniteLossError
from training.models import build_model

_logger = logging.getLogger('training.train')

OK, EMPTY, NONFINITE = 0, 1, 2  # micro-step outcomes, max-reduced over ranks


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
    base_dir = resolve_data_root(cfg.data.base_dir)
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
                          base_dir=resolve_data_root(cfg.data.base_dir))
    count = min(int(cfg.val.num_samples), len(mixed))
    indices = [int(i * len(mixed) / count) for i in range(count)]
    loader = DataLoader(torch.utils.data.Subset(mixed, indices), batch_size=cfg.val.batch_size,
                        collate_fn=collate_common_keys)
    return [{k: batch[k] for k in ('rgb', 'depth', 'valid')} for batch in loader]


def validate(model: torch.nn.Module, batches: List[dict], builder: PretrainBatchBuilder,
             loss_fn: MultiScaleSILogLoss, cfg: DictConfig, device: torch.device,
             autocast) -> float:
    """Return the mean loss over the validation frames and ``val.ratios`` (eval mode).

    Masks are seeded by (run seed, batch index, ratio index): identical at every validation.
    """
    total, count = 0.0, 0
    with evaluating(model):
        for index, batch in enumerate(batches):
            for ratio_index, ratio in enumerate(cfg.val.ratios):
                seed = step_seed(cfg.run.seed, index, ratio_index)
                inputs = builder.eval_inputs(batch, ratio, seed, device)
                with autocast():
                    depths = model(inputs.rgb, inputs.pde)['depths']
                out = loss_fn(depths, inputs.target, inputs.removed)
                if out is not None:
                    total, count = total + out.loss.item(), count + 1
    return total / count if count else math.nan


def _training_size(cfg: DictConfig) -> tuple:
    """Return the (H, W) of the training crops."""
    return TransformConfig(size=to_plain(cfg.data.transform.size)).output_hw


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


@dataclass
class RunContext:
    """Where a run writes and what its log rows need: built once by ``start_run``.

    Attributes:
        cfg: The config.
        info: Rank and device.
        name: Run name (``run.name`` or a time stamp).
        run_dir: The run folder.
        manager: Checkpoint folder of the run.
        images_per_step: Images of one optimiser step over all ranks.
        flops_per_image: Measured training FLOPs per image (None when not measured).
        peak: Peak FLOP/s of the device (None when unknown).
        metrics: metrics.csv / TensorBoard writer (main rank only).
    """

    cfg: DictConfig
    info: distributed.DistInfo
    name: str
    run_dir: str
    manager: CheckpointManager
    images_per_step: int
    flops_per_image: Optional[float] = None
    peak: Optional[float] = None
    metrics: Optional[MetricsLogger] = None


@dataclass
class TrainingParts:
    """The model, its inputs, loss and optimiser: built by ``build_training``.

    Attributes:
        core: The unwrapped model (checkpoints, validation, FLOP counting).
        autocast: Returns the forward pass's autocast context.
        scaler: Gradient scaler (fp16 only).
        noise_shift: Mask-ratio schedule (paper section 5).
        builder: Turns a batch into masked, PDE-encoded model inputs.
        loss_fn: Multi-scale SILog loss.
        params: The trained parameters.
        optimizer: AdamW.
        scheduler: Learning-rate schedule.
        model: What the loop calls: ``core`` or its DDP / compiled wrapper (``wrap_model``).
        ddp: The DDP wrapper when distributed.
    """

    core: torch.nn.Module
    autocast: Callable[[], contextlib.AbstractContextManager]
    scaler: Optional[torch.amp.GradScaler]
    noise_shift: NoiseShift
    builder: PretrainBatchBuilder
    loss_fn: MultiScaleSILogLoss
    params: List[torch.nn.Parameter]
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    model: Optional[torch.nn.Module] = None
    ddp: Optional[DistributedDataParallel] = None


def _fresh_counters() -> Dict[str, int]:
    """Return zeroed step counters (the non-finite guard's and the empty micro-steps)."""
    return dict(fresh_counts(), empty_micro_steps=0)


@dataclass
class StepOutcome:
    """What one optimiser step (``train_step``) did.

    Attributes:
        loss: Mean loss over its backward passes (NaN when skipped or every micro-step empty).
        grad_norm: Gradient norm before clipping (NaN when not computed).
        nonfinite: A non-finite loss or gradient skipped the update.
        backward_passes: Micro-steps that reached backward.
        empty_micro_steps: Micro-steps without a masked valid pixel (no loss).
        inputs: The last micro-batch that reached backward (for panels).
        depths: Its finest predicted depth, (B, 1, H, W).
    """

    loss: float
    grad_norm: float
    nonfinite: bool
    backward_passes: int
    empty_micro_steps: int
    inputs: Optional[PretrainInputs] = None
    depths: Optional[torch.Tensor] = None


def start_run(cfg: DictConfig, info: distributed.DistInfo) -> RunContext:
    """Name the run, write its config.yaml and open its checkpoint folder."""
    name = cfg.run.name or time.strftime('pretrain-%Y%m%d-%H%M%S')
    run_dir = os.path.join(cfg.run.out_dir, name)
    manager = CheckpointManager(os.path.join(run_dir, 'checkpoints'), cfg.checkpoint.keep_last)
    if info.is_main:
        save_config(cfg, os.path.join(run_dir, 'config.yaml'))
    images_per_step = cfg.train.batch_size * cfg.train.accum_steps * info.world_size
    return RunContext(cfg, info, name, run_dir, manager, images_per_step)


def build_training(cfg: DictConfig, device: torch.device) -> TrainingParts:
    """Build the model (the same random initialisation on every rank), loss, AdamW, schedule.

    Parameters the loss does not reach are frozen first (``freeze_unreached_parameters``).
    """
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
    unreached = freeze_unreached_parameters(core, builder, loss_fn, autocast,
                                            _training_size(cfg), device)
    if unreached:
        _logger.info('frozen for pretraining (no gradient from the loss): %s', unreached)
    params = core.trainable_parameters()
    fused = device.type == 'cuda' and cfg.optim.fused in ('auto', True)
    optimizer = torch.optim.AdamW(params, lr=cfg.optim.lr, betas=tuple(cfg.optim.betas),
                                  weight_decay=cfg.optim.weight_decay, fused=fused or None)
    scheduler = build_scheduler(optimizer, cfg.optim.schedule, max_steps)
    return TrainingParts(core, autocast, scaler, noise_shift, builder, loss_fn, params,
                         optimizer, scheduler)


def resume_training(cfg: DictConfig, parts: TrainingParts, path: Optional[str],
                    manager: CheckpointManager, info: distributed.DistInfo) -> Progress:
    """Restore model, optimiser, schedule, scaler, noise shift, counters, sampler and RNG.

    Without a checkpoint (``path`` None) this rank's RNG is seeded for a fresh run, whose model
    weights come from ``train.init_from`` when that is set (a warm start).

    Returns:
        The progress to continue from.
    """
    progress = Progress(counters=_fresh_counters())
    if not path:
        torch.manual_seed(cfg.run.seed + info.rank)
        if cfg.train.init_from:
            parts.core.load_state_dict(read_pretrain(cfg.train.init_from)['model'])
            _logger.info('warm start: model weights of %s, fresh optimiser and schedule',
                         cfg.train.init_from)
        return progress
    state = read_pretrain(path)
    parts.core.load_state_dict(state['model'])
    parts.optimizer.load_state_dict(state['optimizer'])
    parts.scheduler.load_state_dict(state['scheduler'])
    if parts.scaler is not None and state['scaler'] is not None:
        parts.scaler.load_state_dict(state['scaler'])
    parts.noise_shift.load_state_dict(state['noise_shift'])
    progress.counters.update(state['counters'])
    manager.best_metric = state['best_metric']
    progress.step = int(state['step'])
    if state['sampler']['world_size'] == info.world_size:
        progress.consumed = int(state['sampler']['consumed'])
        restore_rng_state(state['rng'][info.rank])
    else:
        progress.consumed = progress.step * cfg.train.batch_size * cfg.train.accum_steps
        _logger.warning('resuming on %d ranks from a %d-rank checkpoint: data order and '
                        'RNG states are not continued exactly', info.world_size,
                        state['sampler']['world_size'])
    _logger.info('resumed %s at step %d', path, progress.step)
    return progress


def measure_flops_per_image(cfg: DictConfig, parts: TrainingParts,
                            device: torch.device) -> Optional[float]:
    """Return training FLOPs per image (None unless ``train.measure_flops``), and log them.

    Measured once on the unwrapped model, on the real per-rank micro-batch shape.
    """
    if not cfg.train.measure_flops:
        return None
    batch_size = cfg.train.batch_size
    train_flops, forward_flops = count_training_flops(
        parts.core, parts.builder, parts.loss_fn, parts.autocast, batch_size,
        _training_size(cfg), device)
    _logger.info('FLOPs per image: %.3f GFLOP training step (fwd + bwd), %.3f GFLOP '
                 'forward', train_flops / batch_size / 1e9, forward_flops / batch_size / 1e9)
    return train_flops / batch_size


def wrap_model(parts: TrainingParts, cfg: DictConfig, info: distributed.DistInfo) -> None:
    """Set ``parts.model``: the core, wrapped in DDP when distributed, compiled on request."""
    model = core = parts.core
    if info.enabled:
        model = parts.ddp = DistributedDataParallel(
            core, device_ids=[info.local_rank] if info.device.type == 'cuda' else None,
            find_unused_parameters=bool(cfg.train.find_unused_parameters))
    parts.model = torch.compile(model) if cfg.train.compile else model


def _micro_step_loss(parts: TrainingParts, depths, inputs: PretrainInputs, step: int,
                     cfg: DictConfig, info: distributed.DistInfo):
    """Return (loss or None, outcome); the outcome is the worst over all ranks.

    ``debug.inject_nan_steps`` turns the loss of those steps into NaN (tests of the guard).
    """
    loss = None
    try:
        out = parts.loss_fn(depths, inputs.target, inputs.removed)
        loss = None if out is None else out.loss
        if loss is not None and step in set(cfg.debug.inject_nan_steps):
            loss = loss * math.nan
        status = EMPTY if loss is None else (OK if torch.isfinite(loss) else NONFINITE)
    except NonFiniteLossError as error:
        _logger.warning('step %d: %s', step, error)
        status = NONFINITE
    return loss, _micro_outcome(status, info)


def _clip_and_update(parts: TrainingParts, cfg: DictConfig, step: int):
    """Unscale and clip the gradients, then step the optimiser unless their norm is non-finite.

    Returns:
        (gradient norm before clipping, whether the update was skipped as non-finite).
        With fp16 the scaler skips overflowing steps by itself.
    """
    if parts.scaler is not None:
        parts.scaler.unscale_(parts.optimizer)
    if step in set(cfg.debug.inject_nan_grad_steps):
        parts.params[0].grad.fill_(math.nan)
    grad_norm = torch.nn.utils.clip_grad_norm_(
        parts.params, cfg.train.grad_clip or math.inf).item()
    if parts.scaler is not None:
        parts.scaler.step(parts.optimizer)
        parts.scaler.update()
        return grad_norm, False
    if not math.isfinite(grad_norm):
        return grad_norm, True
    parts.optimizer.step()
    return grad_norm, False


def train_step(parts: TrainingParts, cfg: DictConfig, info: distributed.DistInfo, batches,
               step: int, generator: torch.Generator) -> StepOutcome:
    """Run one optimiser step: ``train.accum_steps`` micro-steps, then clip and update.

    A non-finite loss (on any rank) or gradient skips the update and undoes the step's
    BatchNorm statistics updates. Every micro-batch is drawn even then: resume stays exact.
    """
    accum = cfg.train.accum_steps
    buffers = list(parts.core.buffers())  # BatchNorm statistics: a bad forward must not stick
    saved_buffers = [b.clone() for b in buffers]
    parts.optimizer.zero_grad(set_to_none=True)
    outcome = StepOutcome(math.nan, math.nan, False, 0, 0)
    step_loss = 0.0
    for micro in range(accum):
        batch = next(batches)
        if outcome.nonfinite:
            continue
        generator.manual_seed(step_seed(cfg.run.seed, info.rank, step, micro))
        inputs = parts.builder.train_inputs(batch, step, generator, info.device)
        sync = parts.ddp.no_sync() if parts.ddp is not None and micro < accum - 1 else \
            contextlib.nullcontext()
        with sync:
            with parts.autocast():
                depths = parts.model(inputs.rgb, inputs.pde)['depths']
            loss, status = _micro_step_loss(parts, depths, inputs, step, cfg, info)
            if status == EMPTY:
                outcome.empty_micro_steps += 1
                continue
            if status == NONFINITE:
                outcome.nonfinite = True
                continue
            loss = loss / accum
            (parts.scaler.scale(loss) if parts.scaler is not None else loss).backward()
            step_loss += loss.item()
            outcome.backward_passes += 1
        outcome.inputs, outcome.depths = inputs, depths[0].detach()

    if not outcome.nonfinite and outcome.backward_passes:
        outcome.grad_norm, outcome.nonfinite = _clip_and_update(parts, cfg, step)
    parts.scheduler.step()
    if outcome.nonfinite:
        with torch.no_grad():
            for buffer, saved in zip(buffers, saved_buffers):
                buffer.copy_(saved)
    elif outcome.backward_passes:
        outcome.loss = step_loss * accum / outcome.backward_passes
    return outcome


def log_metrics(run: RunContext, parts: TrainingParts, bar: tqdm, step: int,
                outcome: StepOutcome, seconds: float, val_loss: float,
                counters: Dict[str, int]) -> None:
    """Write a metrics row for ``step`` (the loss averaged over ranks; every rank calls this)."""
    mean_loss = distributed.all_reduce_mean(
        torch.tensor([outcome.loss], device=run.info.device), run.info).item()
    if not run.info.is_main:
        return
    images_per_s = run.images_per_step / seconds
    row = {'loss': mean_loss, 'lr': parts.scheduler.get_last_lr()[0],
           'grad_norm': outcome.grad_norm, 'mask_mu': parts.noise_shift.params(step)[0],
           'images_per_s': images_per_s, 'skipped_total': counters['nonfinite_total'],
           'step_s': seconds, 'val_loss': val_loss}
    if run.flops_per_image and run.peak:
        row['mfu'] = model_flops_utilization(run.flops_per_image * run.images_per_step /
                                             run.info.world_size, 1.0 / seconds, run.peak)
    run.metrics.log(step + 1, row)
    bar.set_postfix(loss=f'{row["loss"]:.3f}', img_s=f'{images_per_s:.1f}')


def save_panels(run: RunContext, done: int, last: StepOutcome) -> None:
    """Save an input / prediction / target panel of the last batch and the loss curve."""
    rows = run.cfg.log.panel_rows
    os.makedirs(os.path.join(run.run_dir, 'panels'), exist_ok=True)
    save_panel(os.path.join(run.run_dir, 'panels', f'step_{done:08d}.png'),
               last.inputs.rgb[:rows], last.inputs.input_depth[:rows], last.depths[:rows, 0],
               last.inputs.target[:rows], title=f'{run.name} step {done}')
    save_loss_curve(os.path.join(run.run_dir, 'loss_curve.png'), run.metrics.history,
                    title=f'{run.name}: {run.cfg.model.encoder}')


def _checkpoint_state(run: RunContext, parts: TrainingParts, progress: Progress,
                      val_loss: float) -> Dict[str, object]:
    """Assemble the checkpoint dict (``training.checkpoint.pretrain``)."""
    cfg, scaler = run.cfg, parts.scaler
    return pretrain_state(
        parts.core, progress.step, to_plain(cfg),
        optimizer=parts.optimizer.state_dict(),
        scheduler=parts.scheduler.state_dict(),
        scaler=scaler.state_dict() if scaler is not None else None,
        noise_shift=parts.noise_shift.state_dict(),
        sampler={'consumed': progress.consumed, 'world_size': run.info.world_size,
                 'seed': int(cfg.run.seed)},
        rng=distributed.all_gather_objects(capture_rng_state(), run.info),
        counters=dict(progress.counters),
        val_loss=val_loss)


def save_checkpoint(run: RunContext, parts: TrainingParts, progress: Progress,
                    val_loss: float, diverged: bool) -> Optional[str]:
    """Write a checkpoint (every rank joins; the main rank writes and returns its path).

    A diverged run's checkpoint never becomes ``best.pt``.
    """
    state = _checkpoint_state(run, parts, progress, val_loss)
    path = None
    if run.info.is_main:
        path = run.manager.save(state, progress.step, None if diverged else val_loss)
    distributed.barrier(run.info)
    return path


def _micro_outcome(status: int, info: distributed.DistInfo) -> int:
    """Return the worst micro-step outcome over all ranks (the same decision everywhere)."""
    if not info.enabled:
        return status
    value = torch.tensor([status], device=info.device)
    torch.distributed.all_reduce(value, op=torch.distributed.ReduceOp.MAX)
    return int(value.item())


def _out_of_time(cfg: DictConfig, started_s: float, info: distributed.DistInfo) -> bool:
    """Tell whether ``train.max_minutes`` have passed since ``started_s`` (rank 0 decides)."""
    if cfg.train.max_minutes is None:
        return False
    late = time.monotonic() - started_s >= 60.0 * cfg.train.max_minutes
    if not info.enabled:
        return late
    flag = torch.tensor([late], device=info.device)
    torch.distributed.broadcast(flag, src=0)
    return bool(flag.item())


def finish_run(run: RunContext, result: TrainResult, step_times: List[float]) -> TrainResult:
    """Fill in throughput and MFU (after warm-up steps), close the metrics and log a summary."""
    measured = step_times[min(len(step_times) - 1, max(2, len(step_times) // 10)):]
    if measured:
        step_seconds = sum(measured) / len(measured)
        result.images_per_second = run.images_per_step / step_seconds
        if run.flops_per_image and run.peak:
            result.mfu = model_flops_utilization(
                run.flops_per_image * run.images_per_step / run.info.world_size,
                1.0 / step_seconds, run.peak)
    if run.info.is_main:
        run.metrics.close()
        _logger.info('done: steps %d..%d, %.2f images/s%s, %d skipped steps, run folder %s',
                     result.start_step, result.end_step, result.images_per_second,
                     f', MFU {100 * result.mfu:.1f} %' if result.mfu is not None else '',
                     result.skipped_steps, run.run_dir)
    return result


def train(cfg: DictConfig) -> TrainResult:
    """Run (or resume) pretraining as configured.

    Args:
        cfg: Resolved config (``training.engine.config.load_config``).

    Returns:
        What happened (see ``TrainResult``).

    Raises:
        TrainingDiverged: Too many non-finite steps in a row (a checkpoint is written first).
    """
    started_s = time.monotonic()
    info = distributed.init_distributed(cfg.train.device)
    if cfg.train.threads:
        torch.set_num_threads(int(cfg.train.threads))
    run = start_run(cfg, info)
    parts = build_training(cfg, info.device)
    resume_from = resume_path(cfg.train.resume, run.manager)
    progress = resume_training(cfg, parts, resume_from, run.manager, info)
    start_step, max_steps = progress.step, int(cfg.train.max_steps)
    stop_step = min(max_steps, int(cfg.train.stop_at_step or max_steps))
    run.flops_per_image = measure_flops_per_image(cfg, parts, info.device)
    run.peak = peak_flops(info.device, cfg.train.peak_tflops)
    wrap_model(parts, cfg, info)
    batches = iter(build_train_loader(cfg, info, progress.consumed))
    val_batches = load_val_batches(cfg) if cfg.val.enabled and info.is_main else []
    if info.is_main:
        run.metrics = MetricsLogger(run.run_dir, bool(cfg.log.tensorboard),
                                    start_step if resume_from else None)
    result = TrainResult(run.run_dir, start_step, start_step, flops_per_image=run.flops_per_image)
    bar = progress_bar(total=stop_step, initial=start_step, unit='step',
                       enabled=info.is_main and cfg.log.progress)
    step_times, val_loss, last = [], math.nan, None
    generator = torch.Generator(device=info.device)
    guard = NonFiniteGuard(cfg.train.max_consecutive_nonfinite, progress.counters)
    _logger.info('training steps %d..%d of %d, %d images per step, run folder %s',
                 start_step, stop_step, max_steps, run.images_per_step, run.run_dir)

    for step in range(start_step, stop_step):
        started = time.perf_counter()
        outcome = train_step(parts, cfg, info, batches, step, generator)
        progress.consumed += cfg.train.batch_size * cfg.train.accum_steps
        progress.counters['empty_micro_steps'] += outcome.empty_micro_steps
        guard.record(not outcome.nonfinite, step,
                     'gradient' if outcome.backward_passes else 'loss')
        result.losses.append(outcome.loss)
        last = outcome if outcome.inputs is not None else last
        progress.step = result.end_step = done = step + 1
        step_times.append(time.perf_counter() - started)
        bar.update(1)

        diverged = guard.diverged
        final = done == stop_step or _out_of_time(cfg, started_s, info)
        checkpoint_due = done % cfg.checkpoint.every_steps == 0 or final or diverged
        if checkpoint_due and val_batches and not diverged:
            val_loss = validate(parts.core, val_batches, parts.builder, parts.loss_fn, cfg,
                                info.device, parts.autocast)
        if done % cfg.log.every_steps == 0 or checkpoint_due:
            log_metrics(run, parts, bar, step, outcome, step_times[-1],
                        val_loss if checkpoint_due else math.nan, progress.counters)
        panel_due = cfg.log.panel_every_steps and (done % cfg.log.panel_every_steps == 0 or
                                                   final)
        if info.is_main and panel_due and last is not None:
            save_panels(run, done, last)
        if checkpoint_due:
            result.last_checkpoint = save_checkpoint(run, parts, progress, val_loss, diverged)
        if diverged:
            bar.close()
            raise guard.error(step, '; the weights were not updated by them; last '
                              f'checkpoint: {result.last_checkpoint}')
        if final:
            break

    bar.close()
    result.skipped_steps, result.model = guard.total, parts.core
    finish_run(run, result, step_times)
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
