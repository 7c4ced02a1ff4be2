r"""Train the dense descriptor head on the frozen model from depth + pose correspondences.

Usage::

    python -m training.train_descriptors --checkpoint runs/recovered/pretrain.pt \
        --config training/configs/cpu.yaml --out-dir runs/descriptors --minutes 22 \
        [--resume] [--threads 1] [--dim 128] [--channels 64] [--stem-channels 32] [--no-rgb] \
        [--rotations 8]

Frames: the sources of ``data.sources`` that have ground-truth poses (7-Scenes, TUM), with
their ``select`` ranges (the training split of the config); validation pairs from the posed
sources of ``val.sources``; the test split (``holdout.sources``) is never read. Every frame is
encoded once (the encoder is frozen), at ``model.img_size``, through the evaluation runner's
letterbox and PDE. Each step draws ``--pairs`` frame pairs of one sequence (gap uniform in the
source type's range, direction random), keeps the cells of A's descriptor grid whose
reprojection into B is visible (``training.data.correspondences``), up to ``--points`` per
pair, and minimises ``info_nce_loss``. With ``--rotations N`` (default 8) every frame is
also encoded rotated in the image by N - 1 angles evenly spaced over the circle
(``training.data.in_plane_rotation``), and B of each pair is shown at one of the N angles
drawn at random: a camera's roll about its optical axis is then learnt (SIFT's descriptor is
rotation invariant by construction); validation adds each fixed pair once more, B rotated.
AdamW, warm-up then cosine over the wall-time budget
(``training.engine.schedule.budget_learning_rate``, counted over resumes). Validation (fixed
pairs, gaps 5/10/20/40) every ``--val-every`` steps: the share of A's cells whose nearest
descriptor in B lies within one cell of the truth; checkpoints are atomic
(``CheckpointManager``: ``step_*.pt`` with the optimiser, ``best.pt`` = best validation).
"""

import argparse
import dataclasses
import logging
import os
import sys
import time
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import torch

from training.checkpoint.files import CheckpointManager, load_checkpoint
from training.checkpoint.formats import DESCRIPTOR_FORMAT
from training.checkpoint.heads import encoder_fingerprint
from training.data.correspondences import (correspondences, grid_positions, inside_image,
                                           load_posed_frames, PAIR_GAP_RANGES, POSED_TYPES,
                                           PosedFrame)
from training.data.in_plane_rotation import (rotate_frame, rotate_points, rotation_angles,
                                             rotation_matrix)
from training.data.shared_paths import command_text, report_path, shared_dir
from training.engine.config import load_config, to_plain
from training.engine.divergence import NonFiniteGuard
from training.engine.evaluating import evaluating
from training.engine.progress import finite_mean
from training.engine.resume import resume_path
from training.engine.schedule import budget_learning_rate
from training.eval.vd_model import load_vd_model, VDRunner
from training.models.descriptor_head import (DescriptorHead, info_nce_loss, match_accuracy,
                                             pixels_to_grid, TEMPERATURE)

_logger = logging.getLogger(__name__)

VAL_GAPS = (5, 10, 20, 40)
MIN_VISIBLE = 32


@dataclasses.dataclass
class EncodedSequence:
    """The frames of one source, encoded once.

    Attributes:
        name: Source name (for logs).
        kind: Source type.
        frames: The posed frames (camera-resolution depth, pose, intrinsics).
        angles: The in-plane rotations (degrees) each frame is encoded at; the first is 0.
        maps: (N, R, 4, D, h, w) fused token maps, R = len(angles).
        rgb: (N, R, 3, H, W) model RGB input in [0, 1].
    """

    name: str
    kind: str
    frames: List[PosedFrame]
    angles: Tuple[float, ...]
    maps: torch.Tensor
    rgb: torch.Tensor


def encode_sequence(runner: VDRunner, spec: Dict[str, Any], base_dir: str,
                    angles: Tuple[float, ...] = (0.0,)) -> EncodedSequence:
    """Load and encode every frame of a posed source, at each in-plane rotation of ``angles``."""
    frames = load_posed_frames(spec, base_dir)
    maps, rgbs = [], []
    with torch.inference_mode():
        for frame in frames:
            for angle in angles:
                rgb, depth_m = frame.rgb, frame.depth_m
                if angle:
                    rgb, depth_m = rotate_frame(rgb, depth_m,
                                                rotation_matrix(angle, depth_m.shape))
                rgb_in, pde, _ = runner.model_inputs(rgb, depth_m)
                maps.append(torch.cat(runner.model.encode(rgb_in, pde).maps).float().cpu())
                rgbs.append(rgb_in[0].cpu())
    _logger.info('encoded %d frames of %s at %d rotation(s)', len(frames),
                 report_path(spec['root']), len(angles))
    shape = (len(frames), len(angles))
    return EncodedSequence(spec.get('name', spec['type']), spec['type'], frames, angles,
                           torch.stack(maps).reshape(*shape, *maps[0].shape),
                           torch.stack(rgbs).reshape(*shape, *rgbs[0].shape))


@dataclasses.dataclass
class PairTarget:
    """One training or validation pair: frame indices and A's visible cells in B.

    Attributes:
        sequence: Index into the sequence list.
        a: Frame index of A within the sequence.
        b: Frame index of B.
        cells: (M,) flat indices of A's descriptor cells with a visible correspondence.
        grid_xy_b: (M, 2) their positions in B's descriptor grid (B as rotated).
        rotation_b: Index of B's in-plane rotation in the sequence's ``angles`` (A upright).
    """

    sequence: int
    a: int
    b: int
    cells: np.ndarray
    grid_xy_b: np.ndarray
    rotation_b: int = 0


def pair_target(sequences: List[EncodedSequence], sequence: int, a: int, b: int,
                grid_size: Tuple[int, int], rotation_b: int = 0) -> PairTarget:
    """Correspondences of A's descriptor-cell centres in B, in B's grid coordinates.

    With ``rotation_b`` the positions are those in B rotated by that angle; a position the
    rotation carries out of the image is no correspondence.
    """
    frame_a, frame_b = sequences[sequence].frames[a], sequences[sequence].frames[b]
    image_size = frame_a.depth_m.shape
    xy_a = grid_positions(grid_size, image_size)
    found = correspondences(xy_a, frame_a.depth_m, frame_b.depth_m, frame_a.intrinsics,
                            frame_b.intrinsics, frame_a.cam_to_world, frame_b.cam_to_world)
    cells = np.flatnonzero(found.visible)
    xy_b = found.xy_b[cells]  # (M, 2) camera pixels of B
    angle = sequences[sequence].angles[rotation_b]
    if angle:
        xy_b = rotate_points(xy_b, rotation_matrix(angle, frame_b.depth_m.shape))
        kept = inside_image(xy_b, frame_b.depth_m.shape)
        cells, xy_b = cells[kept], xy_b[kept]
    grid_xy = pixels_to_grid(torch.from_numpy(xy_b), frame_b.depth_m.shape, grid_size).numpy()
    return PairTarget(sequence, a, b, cells, grid_xy, rotation_b)


def draw_pairs(sequences: List[EncodedSequence], count: int, rng: np.random.Generator,
               grid_size: Tuple[int, int], max_tries: int = 50) -> List[PairTarget]:
    """Draw ``count`` pairs: a random sequence, frame, gap in its range and direction."""
    pairs = []
    for _ in range(max_tries * count):
        if len(pairs) == count:
            break
        sequence = int(rng.integers(len(sequences)))
        low, high = PAIR_GAP_RANGES[sequences[sequence].kind]
        total = len(sequences[sequence].frames)
        gap = int(rng.integers(low, min(high, total - 1) + 1))
        a = int(rng.integers(total - gap))
        a, b = (a, a + gap) if rng.random() < 0.5 else (a + gap, a)
        rotations = len(sequences[sequence].angles)
        rotation_b = int(rng.integers(rotations)) if rotations > 1 else 0
        target = pair_target(sequences, sequence, a, b, grid_size, rotation_b)
        if len(target.cells) >= MIN_VISIBLE:
            pairs.append(target)
    return pairs


def validation_pairs(sequences: List[EncodedSequence],
                     grid_size: Tuple[int, int]) -> List[PairTarget]:
    """Return fixed pairs of every validation sequence: 4 starts per gap of ``VAL_GAPS``.

    A sequence encoded at several rotations adds each pair once more, B at one of its rotated
    angles in turn.
    """
    pairs = []
    for index, sequence in enumerate(sequences):
        total, rotations = len(sequence.frames), len(sequence.angles)
        for gap in VAL_GAPS:
            if gap >= total:
                continue
            for start in np.linspace(0, total - 1 - gap, 4).round().astype(int):
                shown = [0] if rotations == 1 else [0, 1 + len(pairs) % (rotations - 1)]
                for rotation_b in shown:
                    target = pair_target(sequences, index, int(start), int(start) + gap,
                                         grid_size, rotation_b)
                    if len(target.cells) >= MIN_VISIBLE:
                        pairs.append(target)
    return pairs


def pair_loss(head: DescriptorHead, sequences: List[EncodedSequence], pairs: List[PairTarget],
              points: int, rng: Optional[np.random.Generator], temperature: float
              ) -> Tuple[torch.Tensor, float]:
    """Mean InfoNCE and nearest-cell accuracy over pairs (one head forward for all frames)."""
    maps, rgbs = [], []
    for pair in pairs:
        sequence = sequences[pair.sequence]
        for index, rotation in ((pair.a, 0), (pair.b, pair.rotation_b)):
            maps.append(sequence.maps[index, rotation])
            rgbs.append(sequence.rgb[index, rotation])
    maps = torch.stack(maps)  # (2P, 4, D, h, w)
    descriptors = head(list(maps.unbind(dim=1)), torch.stack(rgbs))  # (2P, dim, h', w')
    losses, accuracies = [], []
    for number, pair in enumerate(pairs):
        cells, grid_xy = pair.cells, pair.grid_xy_b
        if rng is not None and len(cells) > points:
            keep = rng.choice(len(cells), points, replace=False)
            cells, grid_xy = cells[keep], grid_xy[keep]
        desc_a, desc_b = descriptors[2 * number], descriptors[2 * number + 1]  # (dim, h', w')
        anchors = desc_a.reshape(desc_a.shape[0], -1)[:, torch.from_numpy(cells)].T  # (M, dim)
        target = torch.from_numpy(grid_xy).float()
        losses.append(info_nce_loss(anchors, desc_b, target, temperature))
        accuracies.append(match_accuracy(anchors.detach(), desc_b.detach(), target))
    return torch.stack(losses).mean(), float(np.mean(accuracies))


def validate(head: DescriptorHead, sequences: List[EncodedSequence], pairs: List[PairTarget],
             temperature: float) -> Dict[str, float]:
    """Return the validation loss and nearest-cell accuracy (eval mode, every visible cell)."""
    losses, accuracies = [], []
    with evaluating(head):
        for start in range(0, len(pairs), 4):
            loss, accuracy = pair_loss(head, sequences, pairs[start:start + 4], 0, None,
                                       temperature)
            losses.append(float(loss))
            accuracies.append(accuracy)
    return {'val_loss': float(np.mean(losses)), 'val_accuracy': float(np.mean(accuracies))}


def parse_args(argv: List[str]) -> argparse.Namespace:
    """Parse the command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--checkpoint', required=True, help='pretraining checkpoint')
    parser.add_argument('--config', action='append', default=[],
                        help='YAML merged over training/configs/default.yaml')
    parser.add_argument('--data', default=os.path.join(shared_dir(), 'data'))
    parser.add_argument('--out-dir', default='runs/descriptors')
    parser.add_argument('--minutes', type=float, default=22.0, help='wall-time budget')
    parser.add_argument('--max-steps', type=int, default=0, help='stop after N steps (0: none)')
    parser.add_argument('--pairs', type=int, default=4, help='frame pairs per step')
    parser.add_argument('--points', type=int, default=256, help='anchors per pair')
    parser.add_argument('--lr', type=float, default=2e-3)
    parser.add_argument('--temperature', type=float, default=TEMPERATURE)
    parser.add_argument('--dim', type=int, default=128, help='descriptor width')
    parser.add_argument('--channels', type=int, default=64,
                        help='width of the token pyramid and of the stem output')
    parser.add_argument('--stem-channels', type=int, default=32,
                        help="width of the stem's first convolution")
    parser.add_argument('--no-rgb', action='store_true', help='token pyramid only, no stem')
    parser.add_argument('--rotations', type=int, default=8,
                        help='in-plane rotations B is shown at, evenly spaced (1: upright only, '
                        'for a camera that never rolls)')
    parser.add_argument('--val-every', type=int, default=200)
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--resume', action='store_true', help='continue the newest step_*.pt')
    parser.add_argument('overrides', nargs='*', help='config overrides key=value')
    return parser.parse_args(argv)


def posed_sources(cfg: Dict[str, Any]) -> Tuple[List[dict], List[dict]]:
    """Return the training and the validation sources of the config that have poses.

    Raises:
        ValueError: If ``data.sources`` has none.
    """
    posed = [spec for spec in cfg['data']['sources'] if spec['type'] in POSED_TYPES]
    val_specs = [spec for spec in (cfg.get('val') or {}).get('sources', [])
                 if spec['type'] in POSED_TYPES]
    if not posed:
        raise ValueError('data.sources has no source with ground-truth poses '
                         f'(types {POSED_TYPES})')
    return posed, val_specs


def main(argv: Optional[List[str]] = None) -> int:
    """Train; return the exit status."""
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(asctime)s %(name)s: %(message)s')
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    cfg = to_plain(load_config(args.config, args.overrides))
    model, provenance = load_vd_model(cfg['model'], args.checkpoint)
    model.drop_decoder()
    runner = VDRunner(model, tuple(cfg['model']['img_size']), 'cpu')
    posed, val_specs = posed_sources(cfg)
    angles = rotation_angles(args.rotations)
    train_set = [encode_sequence(runner, spec, args.data, angles) for spec in posed]
    val_set = [encode_sequence(runner, spec, args.data, angles) for spec in val_specs]
    patch_grid = train_set[0].maps.shape[-2:]
    grid_size = (4 * patch_grid[0], 4 * patch_grid[1])
    head = DescriptorHead(model.feature_dim, dim=args.dim, channels=args.channels,
                          stem_channels=args.stem_channels, use_rgb=not args.no_rgb)
    optimizer = torch.optim.AdamW(head.parameters(), lr=args.lr, weight_decay=1e-4)
    val_pairs = validation_pairs(val_set, grid_size)
    _logger.info('descriptor grid %s, %d validation pairs, %.2f M head parameters', grid_size,
                 len(val_pairs), sum(p.numel() for p in head.parameters()) / 1e6)
    manager = CheckpointManager(os.path.join(args.out_dir, 'checkpoints'), keep_last=2)
    step, elapsed, history = 0, 0.0, []
    resume_from = resume_path('auto' if args.resume else 'none', manager)
    if resume_from:
        state = load_checkpoint(resume_from)
        head.load_state_dict(state['head'])
        optimizer.load_state_dict(state['optimizer'])
        step, elapsed, history = state['step'], state['elapsed_s'], list(state['val_history'])
        manager.best_metric = state['best_metric']
        _logger.info('resumed %s at step %d', resume_from, step)
    schedule = {'lr': args.lr, 'warmup_steps': 100, 'minutes': args.minutes,
                'final_lr_fraction': 0.02}
    encoder = {'checkpoint': report_path(os.path.abspath(args.checkpoint)),
               'provenance': provenance, 'fingerprint': encoder_fingerprint(model),
               'input_size': list(cfg['model']['img_size'])}
    command = command_text('python -m training.train_descriptors', argv)
    head.train()
    guard = NonFiniteGuard(None)  # a non-finite step is skipped; the run goes on
    started, running = time.monotonic() - elapsed, []
    while True:
        elapsed = time.monotonic() - started
        done = elapsed >= 60.0 * args.minutes or (args.max_steps and step >= args.max_steps)
        if step % args.val_every == 0 or done:
            row = dict(validate(head, val_set, val_pairs, args.temperature), step=step,
                       train_loss=finite_mean(running),
                       minutes=elapsed / 60.0)
            history.append(row)
            running = []
            _logger.info('step %d (%.1f min): train %.3f val loss %.3f, val accuracy %.3f',
                         step, row['minutes'], row['train_loss'], row['val_loss'],
                         row['val_accuracy'])
            state = {'format': DESCRIPTOR_FORMAT, 'step': step, 'elapsed_s': elapsed,
                     'head_config': dict(head.config), 'head': head.state_dict(),
                     'optimizer': optimizer.state_dict(), 'val_history': history,
                     'encoder': encoder, 'command': command,
                     'training_sources': posed, 'val_sources': val_specs,
                     'rotations': list(angles),
                     'grid_size': list(grid_size)}
            manager.save(state, step, -row['val_accuracy'])
        if done:
            break
        rng = np.random.default_rng([args.seed, step])
        for group in optimizer.param_groups:
            group['lr'] = budget_learning_rate(schedule, step, elapsed)
        pairs = draw_pairs(train_set, args.pairs, rng, grid_size)
        loss, _ = pair_loss(head, train_set, pairs, args.points, rng, args.temperature)
        optimizer.zero_grad(set_to_none=True)
        if guard.record(bool(torch.isfinite(loss)), step, 'loss'):
            loss.backward()
            optimizer.step()
            running.append(float(loss.detach()))
        step += 1
    _logger.info('best validation accuracy %.3f: %s', -manager.best_metric, manager.best_path)
    return 0


if __name__ == '__main__':
    sys.exit(main())
