r"""Evaluate Vanishing Depth against classical baselines; write markdown + PNG results.

Usage::

    python -m training.evaluate --task completion|confidence|pose|all \
        [--checkpoint PATH [--checkpoint-label smoke] [--completion-head HEAD.pt] \
        [--descriptor-head DESC.pt] | --random-init] \
        [--config extra.yaml] [--frames 10] [--points 1500 500 150] [--perlin 0.5] \
        [--pairs 10] [--gaps 5 10 20 40] \
        [--input-size 168 224] [--device auto] [--out docs/results/] [key=value ...]

Without ``--checkpoint`` or ``--random-init`` only the baselines run. ``--completion-head`` (a
``training/train_completion.py`` checkpoint of the same pretraining checkpoint) adds the rows
``vd head`` (its metric depth, input pixels kept, as the node publishes ``completed_depth``) and
``vd head + local`` (that depth locally aligned to the input at camera resolution). With a
head that predicts its uncertainty (``depth_uncertainty``), ``--task confidence`` (and
``all``) writes ``confidence.md``: on the same frames and inputs, the sparsification curve of
the filled pixels against the oracle's, AUSE and the RMSE of the most confident half against
all filled pixels (``training.eval.confidence_protocol``). Trailing
``key=value`` arguments override the config (OmegaConf dotlist), e.g. for a tiny model
``'model.timm_kwargs={depth: 4, embed_dim: 64, num_heads: 2}'``.

Pose pairs: when the config names a held-out split, pairs inside each held-out 7-Scenes / TUM
range only (``training.eval.pose_protocol.run_holdout_pose_protocol``), gaps 5-60 camera
frames where the range holds them; the run stops unless every held-out range is at least
``MIN_SPLIT_FRAMES`` frames away from every training range of the config (and of the
descriptor head's own training sources). Rows: ORB, SIFT, ``vd tokens`` (the ``features``
output: final-LayerNorm'd patch tokens) and, with ``--descriptor-head`` (a
``training/train_descriptors.py`` checkpoint on the same encoder), ``vd descriptors`` and
``vd descriptors sub-cell`` (the same matches placed between cells, ``refine_dense_matches``)
and ``vd descriptors correlated`` (those placed to a fraction of a camera pixel by correlation,
``training.eval.correlation_refinement``).
Without a held-out split: the fixed 7-Scenes pairs over frames 0-399.

Completion frames: when the config names a held-out split (``holdout.sources``, e.g.
``--config training/configs/cpu.yaml``), ``--frames`` evenly spaced frames of each held-out
source (0: all of them), one table section per source; otherwise evenly spaced frames of
7-Scenes and YCB-Video videos 0000/0001. Data paths are printed relative to ../shared.
"""

import argparse
import functools
import logging
import os
import sys

from training.checkpoint.completion import load_completion_head
from training.checkpoint.descriptor import load_descriptor_head
from training.checkpoint.model import read_model_checkpoint
from training.data.correspondences import POSED_TYPES, split_distance
from training.data.shared_paths import command_text, report_path, shared_dir, source_text
from training.engine.config import load_config, to_plain
from training.engine.distributed import choose_device
from training.eval.completion_protocol import (baseline_methods, complete_frame, InputPattern,
                                               pattern_seed, run_completion_protocol,
                                               summarize_completion)
from training.eval.confidence_protocol import run_confidence_protocol, summarize_confidence
from training.eval.confidence_report import confidence_markdown, plot_sparsification
from training.eval.correlation_refinement import (MAX_UNROTATED_ROLL_DEG, MIN_MATCHES,
                                                  MIN_SCORE, PATCH_RADIUS, SEARCH_RADIUS)
from training.eval.frames import (completion_frames, holdout_frames, posed_holdout_sequences,
                                  RGBDFrame)
from training.eval.pose_protocol import (AUC_THRESHOLDS_DEG, dense_extractor,
                                         HOLDOUT_POSE_GAPS, keypoint_extractor, POSE_GAPS,
                                         recent_frames_memo, run_holdout_pose_protocol,
                                         run_pose_protocol, sequence_gap, summarize_pose)
from training.eval.report import (completion_markdown, plot_completion_examples,
                                  plot_metric_by_pattern, plot_pose_by_gap, pose_markdown)
from training.eval.rolled_frames import rolled_sequences
from training.eval.vd_model import load_vd_model, VDRunner
from training.models.descriptor_head import TEMPERATURE

_logger = logging.getLogger(__name__)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_DATA = os.path.join(shared_dir(), 'data')
# Frames between a pose test frame and any training frame: 5 s at 10 Hz (TUM lists), 1.7 s at
# 30 Hz (7-Scenes, whose test range is 150 frames away).
MIN_SPLIT_FRAMES = 50


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Parse the command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--task', choices=('completion', 'confidence', 'pose', 'all'),
                        default='all')
    model = parser.add_mutually_exclusive_group()
    model.add_argument('--checkpoint', help='model checkpoint (torch.save file)')
    model.add_argument('--random-init', action='store_true',
                       help='evaluate the randomly initialised model (no pretrained weights)')
    parser.add_argument('--checkpoint-label',
                        help="what the checkpoint is, e.g. 'smoke' or 'real run'")
    parser.add_argument('--completion-head',
                        help='completion head checkpoint (training/train_completion.py)')
    parser.add_argument('--descriptor-head',
                        help='descriptor head checkpoint (training/train_descriptors.py)')
    parser.add_argument('--config', action='append', default=[],
                        help='extra YAML merged over training/configs/default.yaml')
    parser.add_argument('--data', default=DEFAULT_DATA, help='the ../shared/data folder')
    parser.add_argument('--frames', type=int, default=10,
                        help='completion frames per dataset (7-Scenes and YCB-Video), or per '
                        'held-out source of the config (0: all)')
    parser.add_argument('--points', type=int, nargs='*', default=[1500, 500, 150],
                        help='VOID-style input densities (valid points kept)')
    parser.add_argument('--perlin', type=float, nargs='*', default=[0.5],
                        help='Perlin-hole inputs: removed share of valid pixels')
    parser.add_argument('--pairs', type=int, default=10, help='7-Scenes pairs per frame gap')
    parser.add_argument('--gaps', type=int, nargs='+',
                        help=f'frame gaps (30 Hz): default {list(POSE_GAPS)}, with a held-out '
                        f'split {list(HOLDOUT_POSE_GAPS)}')
    parser.add_argument('--input-size', type=int, nargs=2, default=[168, 224],
                        metavar=('H', 'W'), help='model input (camera aspect ratio)')
    parser.add_argument('--device', default='auto', help="'auto', 'cpu' or 'cuda'")
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--roll-seed', type=int,
                        help='pose: roll every held-out frame about its optical axis by an '
                        'angle drawn with this seed (training.eval.rolled_frames)')
    parser.add_argument('--out', default=os.path.join(ROOT, 'docs', 'results'))
    parser.add_argument('overrides', nargs='*', help='config overrides key=value')
    args = parser.parse_args(argv)
    if args.checkpoint_label and not args.checkpoint:
        parser.error('--checkpoint-label needs --checkpoint')
    if args.completion_head and not (args.checkpoint or args.random_init):
        parser.error('--completion-head needs --checkpoint or --random-init')
    if args.descriptor_head and not args.checkpoint:
        parser.error('--descriptor-head needs --checkpoint')
    if args.task == 'confidence' and not args.completion_head:
        parser.error('--task confidence needs --completion-head (with an uncertainty branch)')
    return args


def select_completion_frames(args: argparse.Namespace,
                             cfg: dict) -> tuple[list[RGBDFrame], str]:
    """Return the completion frames and a sentence naming where they come from.

    The config's ``holdout.sources`` when it names them, else the fixed 7-Scenes / YCB-Video
    selection.
    """
    sources = (cfg.get('holdout') or {}).get('sources')
    if not sources:
        return completion_frames(args.data, args.frames), (
            'Fixed frames, evenly spaced over 7-Scenes redkitchen 0-399 and YCB-Video videos '
            '0000/0001 (the config names no holdout.sources, so a model may have trained on '
            'them).')
    frames = holdout_frames(sources, args.data, args.frames)
    split = '; '.join(source_text(spec, args.data) for spec in sources)
    taken = 'every frame' if args.frames <= 0 else f'up to {args.frames} evenly spaced frames'
    return frames, ('Test split of the config (holdout.sources: never read by a model trained '
                    'with this config; the model card says what a given model trained on): '
                    f'{split}; {taken} per source (paths relative to ../shared; select: '
                    '[start, stop(, step)] of the sorted frame list).')


def evaluate_completion(args: argparse.Namespace, cfg: dict, runner: VDRunner | None,
                        provenance: str, command: str) -> list[dict]:
    """Run the completion protocol, write completion.md and its figures, return the rows."""
    frames, origin = select_completion_frames(args, cfg)
    patterns = tuple([InputPattern('points', count) for count in args.points]
                     + [InputPattern('perlin', share) for share in args.perlin])
    if not patterns:
        raise ValueError('no input pattern: give --points and/or --perlin values')
    methods = baseline_methods()
    if runner is not None:
        methods['vd local'] = runner.completion_method(alignment='local')
        methods['vd global (scale)'] = runner.completion_method(alignment='global')
        methods['vd global (scale+shift)'] = runner.completion_method(fit_shift=True,
                                                                      alignment='global')
        if runner.completion_head is not None:
            methods['vd head'] = runner.head_completion_method()
            methods['vd head + local'] = runner.head_completion_method('local')
    _logger.info('completion: %d frames x %d patterns x %d methods', len(frames),
                 len(patterns), len(methods))
    rows = summarize_completion(run_completion_protocol(frames, methods, patterns, args.seed))
    figures = ['completion_rmse.png']
    plot_metric_by_pattern(rows, 'rmse_mm', os.path.join(args.out, figures[0]), provenance)
    # The example figures show the middle density (500 points by default).
    example = (len(args.points) // 2) if args.points else 0
    pattern = patterns[example]
    for dataset in dict.fromkeys(frame.dataset for frame in frames):
        index = next(i for i, frame in enumerate(frames) if frame.dataset == dataset)
        mask, predictions, _ = complete_frame(
            frames[index], pattern, methods, pattern_seed(args.seed, index, example))
        name = f'completion_example_{dataset}.png'
        plot_completion_examples(frames[index].rgb, frames[index].depth_m, mask, predictions,
                                 f'{frames[index].name}, {pattern.name}; model: {provenance}',
                                 os.path.join(args.out, name))
        figures.append(name)
    settings = [
        origin,
        f'Frames ({len(frames)}): ' + ', '.join(frame.name for frame in frames) + '.',
        'Inputs: ' + ', '.join(p.name for p in patterns) + ' of the measured depth '
        '(points uniform over valid pixels; Perlin holes remove that share of valid pixels), '
        f'seeded per frame and pattern from seed {args.seed}; every method sees the same input.',
        'Scored on the held-out pixels only (valid in the measured depth, not given as input); '
        'per-frame metrics averaged over frames (VOID convention). MAE/RMSE in mm, iMAE/iRMSE '
        'of inverse depth in 1/km, predictions clipped to >= 0.05 m.',
        'Methods: nearest = nearest input pixel; linear = Delaunay linear interpolation '
        '(nearest outside the hull); ip_basic = morphological fill after Ku et al. 2018; '
        'vd global = model depth aligned to the input by least squares (scale, or '
        'scale+shift); vd local = global scale, then the ratio input / aligned model depth '
        'interpolated linearly between the input pixels (vd_ros.core.depth_alignment, as the '
        'node does by default); vd head = the metric depth of the completion head '
        '(completed_depth, training/train_completion.py), mapped to the camera; vd head + local '
        '= that depth locally aligned to the input like vd local; input pixels kept.',
        f'Model input {args.input_size[0]}x{args.input_size[1]} (sparse input splatted to the '
        f'model grid), device {args.device}. s/frame is wall time on this machine.',
    ]
    text = completion_markdown(rows, provenance, command, settings, figures)
    with open(os.path.join(args.out, 'completion.md'), 'w') as stream:
        stream.write(text)
    return rows


def evaluate_confidence(args: argparse.Namespace, cfg: dict, runner: VDRunner,
                        provenance: str, command: str,
                        calibration: dict | None = None) -> list[dict]:
    """Score the head's uncertainty on the completion frames; write confidence.md.

    ``calibration``: the head's ``training.calibrate_uncertainty`` record, or None.
    """
    frames, origin = select_completion_frames(args, cfg)
    patterns = tuple([InputPattern('points', count) for count in args.points]
                     + [InputPattern('perlin', share) for share in args.perlin])
    scale = float(calibration['scale']) if calibration else 1.0
    rows = summarize_confidence(run_confidence_protocol(frames, runner, patterns, args.seed,
                                                        scale))
    figures = ['confidence_sparsification.png']
    plot_sparsification(rows, os.path.join(args.out, figures[0]), provenance)
    settings = [
        origin,
        f'Frames ({len(frames)}): ' + ', '.join(frame.name for frame in frames) + '.',
        'Inputs: ' + ', '.join(p.name for p in patterns) + ' of the measured depth, the same '
        f'masks and seeds (seed {args.seed}) as completion.md.',
        "Filled pixels: valid in the measured depth, not given as input. Depth: the head's "
        'completed_depth mapped to the camera (input pixels kept), as the node publishes it '
        'with depth.alignment global. u: depth_uncertainty (metres) mapped the same way; '
        'confidence: exp(-u / depth) as the node publishes it on ~/depth/confidence.',
        'Per frame: RMSE of the most confident 10, 20, ..., 100 % of the filled pixels '
        '(sparsification curve), the same with the pixels ordered by their true error '
        '(oracle), AUSE = mean gap between the two over the ten shares; then means over '
        'frames. ratio = RMSE of the most confident half / RMSE of all filled pixels (of the '
        'means over frames); the oracle ratio is the best any ranking can do; by distance: '
        'the filled pixels ranked by their distance to the nearest input pixel (the '
        'heuristic baseline). Locally aligned: the same depth aligned to the input with '
        "depth.alignment local (the node's default), ranked by the same u. Calibration in "
        'metres: the share of filled pixels whose absolute error is at most u (0.63 for a '
        'Laplace error whose expected size is u) and mean absolute error / mean u.',
        f'Model input {args.input_size[0]}x{args.input_size[1]}, device {args.device}.',
    ]
    if calibration:
        settings.append(
            f'u is calibrated: k = {scale:.3f} times the uncertainty the branch learnt, fit on '
            f'the validation split ({calibration["split"]}, {calibration["frames"]} frames, the '
            'same inputs) by training.calibrate_uncertainty; "before calibration" scores u / k.')
    finite = all(row['finite'] for row in rows)
    settings.append('Confidence finite wherever the depth is finite, on every frame and input: '
                    f'{"yes" if finite else "NO"}.')
    text = confidence_markdown(rows, provenance, command, settings, figures,
                               calibrated=bool(calibration))
    with open(os.path.join(args.out, 'confidence.md'), 'w') as stream:
        stream.write(text)
    for row in rows:
        _logger.info('confidence %s %s: RMSE all %.1f mm, most confident half %.1f mm '
                     '(ratio %.3f, by confidence %.3f, oracle %.3f), AUSE %.1f mm',
                     row['dataset'], row['pattern'], row['rmse_all_mm'], row['rmse_half_mm'],
                     row['half_ratio'], row['half_ratio_relative'], row['oracle_half_ratio'],
                     row['ause_mm'])
    return rows


def pose_extractors(runner: VDRunner | None, descriptor_head) -> dict:
    """Return the pose methods: ORB, SIFT and, with a model, its tokens and descriptors."""
    extractors = {'orb': keypoint_extractor('orb'), 'sift': keypoint_extractor('sift')}
    if runner is not None:
        extractors['vd tokens'] = dense_extractor(runner.dense_features)
        if descriptor_head is not None:
            descriptors = recent_frames_memo(functools.partial(runner.dense_descriptors,
                                                               head=descriptor_head))
            extractors['vd descriptors'] = dense_extractor(descriptors)
            extractors['vd descriptors sub-cell'] = dense_extractor(descriptors, TEMPERATURE)
            extractors['vd descriptors correlated'] = dense_extractor(descriptors, TEMPERATURE,
                                                                      correlation=True)
    return extractors


def check_pose_split(cfg: dict, test: list[dict], descriptor_state: dict | None) -> str:
    """Refuse test ranges closer than ``MIN_SPLIT_FRAMES`` to a training range; say how far.

    Raises:
        ValueError: If a held-out range is too close to a training range of the config or
            of the descriptor head.
    """
    train = list(cfg['data']['sources'])
    if descriptor_state is not None:
        train += list(descriptor_state.get('training_sources') or [])
    distances = split_distance(train, test)
    close = {root: d for root, d in distances.items() if d < MIN_SPLIT_FRAMES}
    if close:
        raise ValueError(f'held-out pose frames within {MIN_SPLIT_FRAMES} frames of training '
                         f'frames: {close}')
    return ', '.join(f'{root} {distance}' for root, distance in distances.items())


def dense_methods_text(input_size) -> str:
    """Return the report's description of the dense ``vd`` pose rows for ``input_size``."""
    return ('vd tokens: one descriptor per ViT patch of the '
            f'{input_size[0]}x{input_size[1]} input (the features output); vd '
            'descriptors: one per cell of the 4x finer grid of the descriptor head; vd '
            'descriptors sub-cell: the same matches, each placed in B between cells by a '
            'soft-argmax over the matched cell and its 8 neighbours (softmax of the '
            f'similarity / {TEMPERATURE}, the training temperature); depth = median over half '
            'a cell. vd descriptors correlated: the sub-cell matches placed in B to a '
            f'fraction of a pixel by normalised cross-correlation of {2 * PATCH_RADIUS + 1} x '
            f'{2 * PATCH_RADIUS + 1} patches of A at camera resolution within '
            f'{SEARCH_RADIUS} pixels of the sub-cell position, only the matches with a peak '
            f'of at least {MIN_SCORE} kept (all when fewer than {MIN_MATCHES}), depth read at '
            'the pixel, B turned back first when the similarity fitted to the matches rolls '
            f'by more than {MAX_UNROTATED_ROLL_DEG:g} deg; chosen on the validation split '
            '(and on it rolled).')


def evaluate_pose(args: argparse.Namespace, cfg: dict, runner: VDRunner | None,
                  provenance: str, command: str, descriptor=None) -> list[dict]:
    """Run the pose protocol, write pose.md and its figure, return the rows.

    Args:
        args: Command line.
        cfg: Resolved config (``holdout.sources`` chooses the held-out protocol).
        runner: The model, or None (baselines only).
        provenance: Model provenance for the report.
        command: The command line text.
        descriptor: (head, checkpoint dict) of ``--descriptor-head``, or None.
    """
    head, state = descriptor if descriptor is not None else (None, None)
    extractors = pose_extractors(runner, head)
    test = [spec for spec in (cfg.get('holdout') or {}).get('sources') or []
            if spec['type'] in POSED_TYPES]
    figures = ['pose_by_gap.png']
    dense = dense_methods_text(args.input_size)
    pipeline = ('Pipeline: descriptors -> mutual nearest neighbours (Hamming for ORB, L2 for '
                'SIFT, cosine for dense vd features at cell centres) -> back-projection with '
                'the measured depth (read at the matched pixel) and the camera intrinsics, the '
                'pixel undistorted first where the images are not rectified (TUM freiburg1: '
                'k1..k3, p1, p2, OpenCV model; 7-Scenes: none), for every method alike -> '
                'RANSAC (1000 x 3 points, 5 cm) + Kabsch.')
    metrics = ('5 cm/5° acc.: share of pairs with rotation error < 5 deg and translation '
               'error < 5 cm. AUC of max(rotation error, translation angle) up to '
               f'{", ".join(str(int(t)) for t in AUC_THRESHOLDS_DEG)} deg (SuperGlue style); '
               'failed pairs count as infinite error. Translation angles are noisy at small '
               'gaps, where the camera moves only millimetres to centimetres.')
    if not test:
        gaps = tuple(args.gaps or POSE_GAPS)
        _logger.info('pose: gaps %s x %d pairs x %d methods', gaps, args.pairs,
                     len(extractors))
        rows = summarize_pose(run_pose_protocol(args.data, extractors, gaps, args.pairs,
                                                args.seed))
        settings = [
            f'Pairs (i, i + gap) evenly spaced over frames 0-399, {args.pairs} per gap, gaps '
            f'{", ".join(map(str, gaps))} (30 Hz); ground truth inv(T_wa) @ T_wb from '
            'pose.txt. The config names no held-out split, so a model may have trained on '
            'these frames.', pipeline, metrics,
            'ORB/SIFT: up to 2000 keypoints at 640x480. ' + dense]
        title = 'Relative pose from feature matches (7-Scenes redkitchen)'
    else:
        distance = check_pose_split(cfg, test, state)
        gaps = tuple(args.gaps or HOLDOUT_POSE_GAPS)
        sequences, rates = posed_holdout_sequences(test, args.data)
        if args.roll_seed is not None:
            sequences = rolled_sequences(sequences, args.roll_seed)
        rows = summarize_pose(run_holdout_pose_protocol(sequences, rates, extractors, gaps,
                                                        args.pairs, args.seed))
        spans = '; '.join(
            f'{name}: {frames[0].name} .. {frames[-1].name} ({len(frames)} frames at '
            f'{rates[name]:.1f} Hz; gaps ' + ', '.join(
                f'{gap} -> {sequence_gap(gap, rates[name])}' for gap in gaps
                if sequence_gap(gap, rates[name]) < len(frames)) + ' of its frames)'
            for name, frames in sequences.items())
        settings = [
            'Test split of the config (holdout.sources), pairs inside each range only: '
            f'{spans}. Nearest training frame (config data.sources and the training sources of '
            f'the descriptor head), in frames of the list: {distance}.' + (
                '' if args.roll_seed is None else
                ' Every frame rolled about its optical axis by an angle uniform over the '
                f'circle (seed {args.roll_seed}; training.eval.rolled_frames).'),
            f'Up to {args.pairs} pairs per gap (evenly spaced starts, each start once); gaps '
            'in 30 Hz camera frames, converted to the rate of the list; a gap the range cannot '
            'hold is left out. Ground truth inv(T_wa) @ T_wb: 7-Scenes pose.txt, TUM '
            'groundtruth.txt interpolated at the depth time stamp.', pipeline, metrics,
            'ORB/SIFT: up to 2000 keypoints at 640x480. ' + dense]
        title = 'Relative pose from feature matches (held-out 7-Scenes and TUM pairs)'
    plot_pose_by_gap(rows, os.path.join(args.out, figures[0]), provenance)
    text = pose_markdown(rows, provenance, command, settings, figures, title, 'vd *')
    with open(os.path.join(args.out, 'pose.md'), 'w') as stream:
        stream.write(text)
    return rows


def main(argv: list[str] | None = None) -> int:
    """Run the evaluation; return the process exit status."""
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(asctime)s %(name)s: %(message)s')
    os.makedirs(args.out, exist_ok=True)
    args.device = choose_device(args.device).type
    command = command_text('python -m training.evaluate', argv)
    runner, provenance, calibration = None, 'none (baselines only)', None
    cfg = to_plain(load_config(args.config, args.overrides))
    if args.checkpoint or args.random_init:
        model, provenance = load_vd_model(cfg['model'], args.checkpoint, args.checkpoint_label,
                                          args.seed)
        head = None
        if args.completion_head:
            step = read_model_checkpoint(args.checkpoint).step if args.checkpoint else None
            head, info = load_completion_head(args.completion_head, model, step)
            calibration = info.get('calibration')
            provenance += (f'; completion head {report_path(args.completion_head)} '
                           f'(step {info["step"]})')
            if calibration:
                provenance += f', uncertainty calibrated (k = {calibration["scale"]:.3f})'
        runner = VDRunner(model, tuple(args.input_size), args.device, head)
    descriptor = None
    if args.descriptor_head:
        descriptor = load_descriptor_head(args.descriptor_head, runner.model)
        provenance += (f'; descriptor head {report_path(args.descriptor_head)} '
                       f'(step {descriptor[1]["step"]})')
    _logger.info('model: %s', provenance)
    if args.task in ('completion', 'all'):
        evaluate_completion(args, cfg, runner, provenance, command)
    has_uncertainty = runner is not None and runner.completion_head is not None and \
        runner.completion_head.uncertainty is not None
    if args.task == 'confidence' and not has_uncertainty:
        raise ValueError(f'{args.completion_head}: the completion head has no uncertainty '
                         'branch (train it with completion.head.uncertainty=true)')
    if args.task in ('confidence', 'all') and has_uncertainty:
        evaluate_confidence(args, cfg, runner, provenance, command, calibration)
    if args.task in ('pose', 'all'):
        evaluate_pose(args, cfg, runner, provenance, command, descriptor)
    _logger.info('results written to %s', args.out)
    return 0


if __name__ == '__main__':
    sys.exit(main())
