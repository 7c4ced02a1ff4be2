r"""Teach a vd_ros model the robot's own room: adapt its completion head to a recording.

Usage::

    vd_ros_adapt RECORDING [--model models/vd_cpu.onnx] [--out models/vd_adapted.onnx] \\
        [--minutes 20] [--replay 0.25] [--work-dir runs/adapt/NAME] [key=value ...]
    python -m training.adapt ...            # the same

``RECORDING`` is a rosbag2 (``.mcap`` / ``.db3`` or a bag folder; topics guessed from their
names unless ``--rgb-topic`` / ``--depth-topic`` name them), a folder in a layout the readers
know (7-Scenes, TUM, YCB-Video, Open3D), or any folder given by ``--rgb-glob`` /
``--depth-glob`` with ``--depth-scale`` and ``--intrinsics``. No labels are needed: the
recording's own measured depth is the target. Each step hides measured pixels the way the
node meets them (100-2000 sparse points, or Perlin-shaped sensor holes over 30-70 % of the
valid pixels) and trains the completion head to predict them back; the encoder, adapter and
decoder stay as they are. The weights come from the ONNX file itself
(``training.export.recover``), so no checkpoint is needed.

The recording is split in time (``training.data.recording.time_split``): its last
``--holdback`` share (default 20 %) is held back, with a gap of ``--gap-frames`` frames (and 5 s
where the frames carry stamps) before it. ``--replay`` mixes in that share of frames the base
model trained on (``--replay-config``: its ``data.sources``), so that the model does not forget
other rooms; ``--replay 0`` specialises fully. Every ``val_every_steps`` steps the head is
scored on the held-back part (150 / 500 / 1500 points and Perlin 50 % holes); the checkpoint
that is best there on average, better than the input model on average and worse at no
pattern, is the one exported. When none is, nothing is written and the exit code is 2. The
run resumes from ``--work-dir`` when stopped (same recording and model). The written file is
a contract model: its metadata records the parent file (SHA-256), the recording, the split,
steps, minutes and the validation tables, on the held-back part and on the base model's test
split (``holdout.sources`` of the replay config).

Exit codes: 0 written, 1 bad input, 2 refused (no better than the input model), 3 diverged.
"""

import argparse
import copy
import logging
import os
import sys
import tempfile
from typing import Any, Dict, List, Optional, Tuple

from omegaconf import OmegaConf
import torch
from torch.utils.data import Subset

from training.checkpoint.completion import best_head_state, read_best_head
from training.checkpoint.files import atomic_save, CheckpointManager
from training.data.datasets import build_dataset, build_source, MixedDataset
from training.data.recording import frame_times, recording_source, time_split, TimeSplit
from training.data.shared_paths import REPO_ROOT, report_path, resolve_data_root
from training.data.transforms import build_transform
from training.engine.completion_loop import fit_head, HeadRun, resume
from training.engine.completion_val import build_val_set, validate, ValSet
from training.engine.config import load_config_with_section, save_config
from training.engine.distributed import choose_device
from training.engine.divergence import TrainingDiverged
from training.engine.sample_stream import stream_loader
from training.eval.adaptation import (comparison_lines, head_rmse_text, mean_ratio,
                                      worse_patterns)
from training.eval.frames import evenly_spaced
from training.export.contract import file_sha256
from training.export.exporter import export_onnx
from training.export.recover import check_outputs, recover
from training.models.completion_head import build_completion_head

_logger = logging.getLogger('training.adapt')

HERE = os.path.dirname(os.path.abspath(__file__))
COMPLETION_CONFIG = os.path.join(HERE, 'configs', 'completion.yaml')
ADAPT_CONFIG = os.path.join(HERE, 'configs', 'adapt.yaml')
REPLAY_CONFIG = os.path.join(HERE, 'configs', 'cpu.yaml')
EXIT_BAD_INPUT, EXIT_REFUSED, EXIT_DIVERGED = 1, 2, 3


class AdaptationRefused(RuntimeError):
    """No checkpoint of the run beats the input model on the held-back part."""


def replay_sources(config_path: str, share: float,
                   base_dir: str) -> Tuple[List[Any], List[float], Dict[str, Any]]:
    """Return the replay datasets, their weights (summing to ``share``) and the split info.

    Args:
        config_path: A training config (its ``data.sources`` and ``holdout.sources``).
        share: Share of the draws that replay; 0 reads no source.
        base_dir: Default root of relative source roots (``data.base_dir``).

    Raises:
        ValueError: A share outside [0, 1), no sources, or frames that cannot be read.
    """
    if not 0.0 <= share < 1.0:
        raise ValueError(f'--replay must lie in [0, 1), got {share}')
    cfg = OmegaConf.to_container(OmegaConf.load(config_path), resolve=False)
    data = cfg.get('data') or {}
    info = {'base_dir': resolve_data_root(data.get('base_dir') or base_dir),
            'holdout': (cfg.get('holdout') or {}).get('sources') or []}
    specs = data.get('sources') or []
    if share == 0.0:
        return [], [], info
    if not specs:
        raise ValueError(f'{config_path} names no data.sources to replay; pass --replay 0')
    try:
        datasets = [build_source(spec, None, base_dir=info['base_dir']) for spec in specs]
    except (OSError, ValueError) as error:
        raise ValueError(f'the replay frames of {config_path} cannot be read ({error}); put '
                         "the base model's training data under ../shared/data, name another "
                         '--replay-config, or pass --replay 0 to specialise fully') from error
    total = sum(float(spec.get('weight', 1.0)) for spec in specs)
    return datasets, [share * float(spec.get('weight', 1.0)) / total for spec in specs], info


def base_holdout_set(replay: dict, frames: int, cfg: dict, model, device) -> ValSet:
    """Return fixed inputs on ``frames`` evenly spaced frames of the base held-out split."""
    if not replay['holdout'] or frames <= 0:
        return ValSet()
    try:
        mixed = build_dataset({'sources': replay['holdout']}, None, base_dir=replay['base_dir'])
    except (OSError, ValueError) as error:
        _logger.warning('base held-out split not scored: %s', error)
        return ValSet()
    return build_val_set(mixed, evenly_spaced(len(mixed), frames), cfg, model, device)


def parse_args(argv: List[str]) -> argparse.Namespace:
    """Parse the command line (see the module docstring)."""
    parser = argparse.ArgumentParser(prog='vd_ros_adapt', description=__doc__.split('\n')[0])
    parser.add_argument('recording', help='rosbag2 (.mcap/.db3/bag folder) or frame folder')
    parser.add_argument('--model', default=os.path.join(REPO_ROOT, 'models', 'vd_cpu.onnx'),
                        help='contract ONNX model to start from (default: the shipped one)')
    parser.add_argument('--out', default=os.path.join('models', 'vd_adapted.onnx'))
    parser.add_argument('--minutes', type=float, help='wall-time budget (default 20)')
    parser.add_argument('--replay', type=float, default=0.25,
                        help="share of each batch drawn from the base model's training frames")
    parser.add_argument('--replay-config', default=REPLAY_CONFIG,
                        help='config whose data.sources are replayed and whose '
                        'holdout.sources are scored for forgetting')
    parser.add_argument('--work-dir', help='checkpoints and logs (default runs/adapt/NAME)')
    parser.add_argument('--holdback', type=float, default=0.2,
                        help='share of the recording held back for validation (its end)')
    parser.add_argument('--gap-frames', type=int, default=50)
    parser.add_argument('--gap-seconds', type=float, default=5.0)
    parser.add_argument('--frames', type=int, nargs=2, metavar=('START', 'STOP'),
                        help='use only these frames of the recording (a time range)')
    parser.add_argument('--val-frames', type=int, default=32,
                        help='held-back frames scored (evenly spaced)')
    parser.add_argument('--holdout-frames', type=int, default=24,
                        help='frames of the base held-out split scored (0 = skip)')
    parser.add_argument('--rgb-topic')
    parser.add_argument('--depth-topic')
    parser.add_argument('--camera-info-topic')
    parser.add_argument('--rgb-glob')
    parser.add_argument('--depth-glob')
    parser.add_argument('--depth-scale', type=float, help='metres per depth unit (0.001 = mm)')
    parser.add_argument('--intrinsics', type=float, nargs=4, metavar=('FX', 'FY', 'CX', 'CY'))
    parser.add_argument('overrides', nargs='*', help='config overrides key=value '
                        '(training/configs/adapt.yaml over completion.yaml)')
    return parser.parse_intermixed_args(argv)


def load_recording(args: argparse.Namespace) -> Tuple[Any, Dict[str, Any], TimeSplit]:
    """Read the recording and split it in time; returns (dataset, source spec, split)."""
    spec = recording_source(args.recording, args.rgb_topic, args.depth_topic,
                            args.camera_info_topic, args.rgb_glob, args.depth_glob,
                            args.depth_scale, args.intrinsics)
    dataset = build_source(spec, None)
    times = frame_times(dataset)
    if args.frames:
        start, stop = args.frames
        keep = list(range(len(dataset)))[start:stop]
        if not keep:
            raise ValueError(f'--frames {start} {stop} selects nothing of {len(dataset)} frames')
        dataset = Subset(dataset, keep)
        times = None if times is None else times[keep]
    split = time_split(len(dataset), times, args.holdback, args.gap_frames, args.gap_seconds)
    return dataset, spec, split


class BestHead:
    """Keeps the validated head best on average, better than the input, worse at no pattern.

    Attributes:
        reference: The input model's validation row.
        path: Where the best state is written (atomic; read back on resume).
        run: The run whose head is judged.
        state: ``{'step', 'head', 'row', 'ratio'}`` of the best so far, or None.
    """

    def __init__(self, reference: Dict[str, float], path: str, run: HeadRun):
        """Read a best state of an earlier, resumed invocation from ``path``."""
        self.reference, self.path, self.run = reference, path, run
        self.state = read_best_head(path)

    def __call__(self, row: Dict[str, float]) -> None:
        """Consider the head as it is now, validated as ``row``."""
        ratio = mean_ratio(row, self.reference)
        if worse_patterns(row, self.reference) or ratio >= 1.0:
            return
        if self.state is None or ratio < self.state['ratio']:
            self.state = best_head_state(self.run.progress.step, ratio, row, self.run.head)
            atomic_save(self.state, self.path)


def adapt(args: argparse.Namespace) -> Dict[str, Any]:
    """Run one adaptation; returns the report (also stored in the written model).

    Raises:
        AdaptationRefused: Nothing beat the input model (no file written).
        TrainingDiverged: Too many non-finite steps in a row.
        ValueError: Bad recording, model or settings.
    """
    overrides = list(args.overrides)
    if args.minutes is not None:
        overrides.append(f'completion.minutes={args.minutes}')
    cfg = load_config_with_section(COMPLETION_CONFIG, 'completion', [ADAPT_CONFIG], overrides)
    ccfg = cfg['completion']
    if ccfg['threads']:
        torch.set_num_threads(int(ccfg['threads']))
    device = choose_device(ccfg['device'])
    dataset, spec, split = load_recording(args)
    parent_sha = file_sha256(args.model)
    name = os.path.basename(os.path.normpath(args.recording)).split('.')[0]
    work_dir = args.work_dir or os.path.join('runs', 'adapt', f'{name}-{parent_sha[:8]}')
    _logger.info('recording %s: %d frames, %s', report_path(args.recording), len(dataset),
                 split.describe())
    with tempfile.TemporaryDirectory() as scratch:
        graph, contract, _ = recover(args.model, scratch)
    model = graph.model.to(device).requires_grad_(False)
    cfg['data']['transform']['size'] = list(contract.input_size)
    cfg['completion']['out_dir'] = work_dir
    head = graph.completion_head
    if head is None:
        _logger.warning('%s has no completion head: a new one is trained', args.model)
        torch.manual_seed(ccfg['seed'])
        head = build_completion_head(model, ccfg['head'])
    head = head.to(device).train().requires_grad_(True)
    input_head = copy.deepcopy(head).eval()

    replay, replay_weights, replay_info = replay_sources(
        args.replay_config, args.replay, cfg['data']['base_dir'])
    train_part = Subset(dataset, range(split.train_stop))
    mixed = MixedDataset([train_part, *replay], [1.0 - args.replay, *replay_weights],
                         ['recording', *[f'replay {i}' for i in range(len(replay))]])
    weights = mixed.sample_weights()
    held_back = Subset(dataset, range(split.val_start, split.count))
    val = build_val_set(held_back, evenly_spaced(len(held_back), args.val_frames), cfg, model,
                        device)
    holdout = base_holdout_set(replay_info, args.holdout_frames, cfg, model, device)
    reference = validate(model, input_head, val)
    _logger.info('input model on the held-back part: %s', head_rmse_text(reference))

    encoder = {'checkpoint': report_path(args.model), 'step': contract.training.get('steps'),
               'model_config': model.config, 'sha256': parent_sha}
    optimizer = torch.optim.AdamW(head.parameters(), lr=ccfg['lr'],
                                  weight_decay=ccfg['weight_decay'])
    manager = CheckpointManager(os.path.join(work_dir, 'checkpoints'), ccfg['keep_last'])
    save_config(OmegaConf.create(cfg), os.path.join(work_dir, 'config.yaml'))
    progress = resume(manager.latest(), head, optimizer, encoder)
    run = HeadRun(model, head, optimizer, manager, cfg, encoder, progress, device)
    best = BestHead(reference, os.path.join(work_dir, 'best_head.pt'), run)
    transform = build_transform({**cfg['data']['transform'], **ccfg['transform']}, train=True)
    loader = stream_loader(mixed, weights, transform, ccfg['batch_size'], ccfg['seed'],
                           cfg['data']['samples_per_epoch'], int(cfg['data']['num_workers']),
                           progress.consumed)
    fit_head(run, loader, val, 'adapting', on_validation=best)
    if best.state is None:
        raise AdaptationRefused(
            f'no checkpoint of {progress.step} steps beats {args.model} on the held-back part '
            'on average without being worse at some input pattern; nothing written (input '
            f'model: {head_rmse_text(reference)})')
    head.load_state_dict(best.state['head'])
    head.eval()
    report = adaptation_report(args, parent_sha, contract, spec, split, progress, best)
    report['base_holdout'] = ({'input': validate(model, input_head, holdout),
                               'adapted': validate(model, head, holdout)}
                              if holdout.batches else None)
    write_model(graph, head, contract, args.out, report)
    return report


def adaptation_report(args: argparse.Namespace, parent_sha: str, contract, spec: Dict[str, Any],
                      split: TimeSplit, progress, best: 'BestHead') -> Dict[str, Any]:
    """Return what the written model records of its adaptation (without the base split)."""
    return {
        'parent': {'file': report_path(args.model), 'sha256': parent_sha,
                   'adaptation': contract.training.get('adaptation')},
        'recording': {'source': {k: report_path(v) if k == 'root' else v
                                 for k, v in spec.items()},
                      'frames': split.count, 'split': split.describe(),
                      'range': list(args.frames) if args.frames else None},
        'replay': {'share': args.replay, 'config': report_path(args.replay_config)},
        'steps': progress.step, 'chosen_step': best.state['step'],
        'minutes': round(progress.elapsed_s / 60.0, 2),
        'held_back': {'input': best.reference, 'adapted': best.state['row']}}


def write_model(graph, head, contract, out: str, report: Dict[str, Any]) -> None:
    """Export the adapted model and check it against the torch modules."""
    info = dict(contract.training)
    info['adaptation'] = report
    info['completion_head'] = {**(info.get('completion_head') or {}),
                               'adapted_steps': report['steps'],
                               'val': report['held_back']['adapted']}
    # The uncertainty branch trained on (NLL on the recording): the parent's calibration
    # factor is in its weights, but no longer a measured calibration of this file.
    calibration = info['completion_head'].pop('calibration', None)
    if calibration:
        info['completion_head']['parent_calibration'] = calibration
    export = info.get('export') or {}
    graph.completion_head = head.cpu()
    graph.model.cpu()
    written = export_onnx(graph.model, graph.seg_head, out, contract.input_size,
                          contract.class_names, trained=contract.trained, training_info=info,
                          exporter=export.get('exporter', 'torchscript'),
                          opset=export.get('opset'), completion_head=head,
                          fp16_weights=export.get('weights') == 'fp16')
    check_outputs(graph, out, written)


def summary_lines(report: Dict[str, Any]) -> List[str]:
    """Return the report's tables as log lines."""
    lines = comparison_lines('held-back part of the recording (RMSE, model grid):',
                             report['held_back']['input'], report['held_back']['adapted'])
    if report['base_holdout']:
        lines += [''] + comparison_lines('base model held-out split (forgetting):',
                                         report['base_holdout']['input'],
                                         report['base_holdout']['adapted'])
    return lines


def main(argv: Optional[List[str]] = None) -> int:
    """Command-line entry point; returns the exit status (module docstring)."""
    logging.basicConfig(level=logging.INFO, format='%(asctime)s %(name)s: %(message)s')
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        report = adapt(args)
    except AdaptationRefused as error:
        _logger.error('REFUSED: %s', error)
        return EXIT_REFUSED
    except TrainingDiverged as error:
        _logger.error('%s', error)
        return EXIT_DIVERGED
    except (OSError, ValueError) as error:
        _logger.error('%s', error)
        return EXIT_BAD_INPUT
    for line in summary_lines(report):
        _logger.info('%s', line)
    _logger.info('wrote %s (%d steps, %.1f min, step %d chosen); load it with: ros2 param set '
                 '/vd_perception model_path %s', args.out, report['steps'], report['minutes'],
                 report['chosen_step'], os.path.abspath(args.out))
    return 0


if __name__ == '__main__':
    sys.exit(main())
