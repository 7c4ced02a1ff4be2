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
in a row stop the run. Checkpoints are atomic (``training.checkpoint.files``); the last one is
the one to export (``training.export_onnx --completion-head``).
"""

import argparse
import logging
import os
import sys
from typing import Any, Dict, List, Optional

from omegaconf import OmegaConf
import torch

from training.checkpoint.files import CheckpointManager
from training.checkpoint.model import build_checked_model
from training.data.datasets import build_dataset
from training.data.shared_paths import report_path, resolve_data_root
from training.data.transforms import build_transform
from training.engine.completion_loop import fit_head, HeadRun, Progress, resume
from training.engine.completion_val import build_val_set
from training.engine.config import load_config_with_section, save_config
from training.engine.distributed import choose_device
from training.engine.divergence import TrainingDiverged
from training.engine.resume import resume_path
from training.engine.sample_stream import stream_loader
from training.models.completion_head import build_completion_head

_logger = logging.getLogger('training.train_completion')

COMPLETION_CONFIG = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'configs',
                                 'completion.yaml')


def load_completion_config(files: List[str], overrides: List[str]) -> Dict[str, Any]:
    """Merge default.yaml, completion.yaml, ``files`` and ``key=value`` overrides.

    Raises:
        ValueError: An unknown key or a bad override.
    """
    return load_config_with_section(COMPLETION_CONFIG, 'completion', files, overrides)


def split_frames(mixed, count: int):
    """Set aside ``count`` evenly spaced frames; return (their indices, training weights)."""
    weights = mixed.sample_weights().clone()  # (N,)
    count = min(int(count), len(mixed) // 10)
    indices = [int(i * len(mixed) / count) for i in range(count)] if count > 0 else []
    weights[indices] = 0.0
    return indices, weights


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
    device = choose_device(ccfg['device'])
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
    # freeze_depth: the depth stays exactly the warm start's, only the uncertainty trains.
    trained = head.uncertainty_only() if ccfg['freeze_depth'] else list(head.parameters())
    optimizer = torch.optim.AdamW(trained, lr=ccfg['lr'],
                                  weight_decay=ccfg['weight_decay'])
    manager = CheckpointManager(os.path.join(ccfg['out_dir'], 'checkpoints'), ccfg['keep_last'])
    save_config(OmegaConf.create(cfg), os.path.join(ccfg['out_dir'], 'config.yaml'))
    progress = resume(resume_path(ccfg['resume'], manager), head, optimizer, encoder,
                      ccfg['init_from'])

    base_dir = resolve_data_root(cfg['data']['base_dir'])
    mixed = build_dataset({'sources': cfg['data']['sources']}, None, base_dir=base_dir)
    val_indices, weights = split_frames(mixed, ccfg['val_frames'])
    val = build_val_set(mixed, val_indices, cfg, model, device)
    transform = build_transform({**cfg['data']['transform'], **ccfg['transform']}, train=True)
    loader = stream_loader(mixed, weights, transform, ccfg['batch_size'], ccfg['seed'],
                           cfg['data']['samples_per_epoch'], int(cfg['data']['num_workers']),
                           progress.consumed)
    _logger.info('%d training frames (%d set aside for validation), head %d parameters, '
                 'budget %.1f min, from step %d', len(mixed) - len(val_indices),
                 len(val_indices), sum(p.numel() for p in trained), ccfg['minutes'],
                 progress.step)
    return fit_head(HeadRun(model, head, optimizer, manager, cfg, encoder, progress, device),
                    loader, val, 'completion head')


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
