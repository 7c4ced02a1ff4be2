"""How far the camera rolls between the frames of a pair: training pairs against test pairs.

A descriptor learnt on pairs of an upright camera does not match across a roll about the
optical axis. This prints, per posed source, the roll of B relative to A (the rotation of the
relative pose about A's optical axis, in degrees) over the pairs the descriptor head trains on
(every gap of ``correspondences.PAIR_GAP_RANGES`` in the training split of the config) and
over the test pairs of the pose evaluation (``holdout.sources``, ``HOLDOUT_POSE_GAPS``, 20
pairs per gap): median, 90th percentile and the share above 30 degrees.

Usage: python -m bench.camera_roll [--config training/configs/cpu.yaml] [--pairs 20]
"""

import argparse
import os

import numpy as np

from training.data.correspondences import load_posed_frames, PAIR_GAP_RANGES, POSED_TYPES
from training.data.shared_paths import shared_dir
from training.engine.config import load_config, to_plain
from training.eval.frames import posed_holdout_sequences
from training.eval.pose_protocol import frame_pairs, HOLDOUT_POSE_GAPS, sequence_gap


def roll_deg(cam_to_world_a: np.ndarray, cam_to_world_b: np.ndarray) -> float:
    """Return |roll| of B relative to A: its rotation about A's optical axis (z), degrees."""
    rotation = (np.linalg.inv(cam_to_world_a) @ cam_to_world_b)[:3, :3]
    return abs(float(np.degrees(np.arctan2(rotation[1, 0], rotation[0, 0]))))


def summary(rolls: list) -> str:
    """Return 'pairs, median, p90, share > 30 deg' as table cells."""
    values = np.asarray(rolls)
    return (f'{len(values)} | {np.median(values):.1f} | {np.percentile(values, 90):.1f} | '
            f'{np.mean(values > 30.0):.2f}')


def main() -> None:
    """Print the roll of the training and the test pairs of every posed source."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--config', default=os.path.join('training', 'configs', 'cpu.yaml'))
    parser.add_argument('--pairs', type=int, default=20, help='test pairs per gap')
    args = parser.parse_args()
    cfg = to_plain(load_config([args.config], []))
    data = os.path.join(shared_dir(), 'data')
    print(f'Command: `python -m bench.camera_roll --config {args.config} --pairs {args.pairs}`')
    print('| source | pairs | n | median roll [deg] | p90 [deg] | share > 30 deg |')
    print('|---|---|---:|---:|---:|---:|')
    for spec in cfg['data']['sources']:
        if spec['type'] in POSED_TYPES:
            poses = [frame.cam_to_world for frame in load_posed_frames(spec, data)]
            low, high = PAIR_GAP_RANGES[spec['type']]
            rolls = [roll_deg(poses[a], poses[a + gap]) for gap in range(low, high + 1)
                     for a in range(len(poses) - gap)]
            print(f"| {spec['root']} | training | {summary(rolls)} |")
    sequences, rates = posed_holdout_sequences(cfg['holdout']['sources'], data)
    for name, frames in sequences.items():
        steps = [sequence_gap(gap, rates[name]) for gap in HOLDOUT_POSE_GAPS]
        rolls = [roll_deg(frames[a].cam_to_world, frames[b].cam_to_world)
                 for step in steps if step < len(frames)
                 for a, b in frame_pairs(step, args.pairs, len(frames))]
        print(f'| {name} | test | {summary(rolls)} |')


if __name__ == '__main__':
    main()
