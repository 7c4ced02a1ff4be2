r"""Pack a config's training and held-out frames into a small folder that travels with the repo.

Usage::

    python -m training.pack_data --config training/configs/cpu.yaml --out gpu_pack \
        [--size 180 240]

A machine that gets a copy of the repository without ``../shared`` (the GPU machine of
``tools/gpu_train.sh``, ``docs/gpu_run.md``) trains on the packed copy instead: every source of
``data.sources``, ``val.sources`` and ``holdout.sources`` is read through its own reader
(``select`` / ``exclude`` applied, corrupt frames skipped and counted as in training), each
frame is shrunk to fit ``--size`` (RGB with area interpolation, saved as JPEG; depth with
nearest-neighbour only, saved as 16-bit PNG in millimetres, 0 = invalid; intrinsics scaled)
and written to ``<out>/data/NN_<name>/``, ``<out>/val/NN_<name>/`` or
``<out>/holdout/NN_<name>/``. ``<out>/pack.yaml`` is a config overlay, merged after the
original config (a second ``--config``), whose sources are ``type: folder`` entries over those
folders with the original weights and whose ``data.base_dir`` is the pack itself (relative to
the repository root when inside it).
"""

import argparse
import json
import logging
import os
import shutil
import sys
from typing import Any, Dict, List, Optional, Sequence

import cv2
import numpy as np

from training.data.datasets import build_source
from training.data.shared_paths import REPO_ROOT, report_path, resolve_data_root
from training.data.transforms import resize_to_fit
from training.engine.config import load_config, to_plain
import yaml

_logger = logging.getLogger('training.pack_data')

DEFAULT_SIZE = (180, 240)  # cpu.yaml's 699 frames: 24.3 MB; it trains on crops at 126x168
JPEG_QUALITY = 92
MAX_DEPTH_MM = np.iinfo(np.uint16).max
RGB_GLOB, DEPTH_GLOB = 'rgb/*.jpg', 'depth/*.png'


def depth_to_millimetres(depth_m: np.ndarray) -> np.ndarray:
    """Return metres as uint16 millimetres; invalid (<= 0, non-finite, > 65.535 m) becomes 0."""
    millimetres = np.round(np.nan_to_num(depth_m, nan=0.0, posinf=0.0) * 1000.0)
    millimetres[(millimetres <= 0) | (millimetres > MAX_DEPTH_MM)] = 0
    return millimetres.astype(np.uint16)


def shrink(sample: dict, size: Sequence[int]) -> dict:
    """Resize a sample to fit ``size`` (H, W), aspect kept, unless it fits already."""
    height, width = sample['depth'].shape
    if height <= size[0] and width <= size[1]:
        return sample
    return resize_to_fit(sample, tuple(size), rgb_interpolation='area')


def _write_frame(folder: str, index: int, sample: dict) -> None:
    """Write ``rgb/NNNNN.jpg`` and ``depth/NNNNN.png`` of one sample."""
    rgb_path = os.path.join(folder, 'rgb', f'{index:05d}.jpg')
    depth_path = os.path.join(folder, 'depth', f'{index:05d}.png')
    if not cv2.imwrite(rgb_path, cv2.cvtColor(sample['rgb'], cv2.COLOR_RGB2BGR),
                       [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]):
        raise OSError(f'could not write {rgb_path}')
    if not cv2.imwrite(depth_path, depth_to_millimetres(sample['depth']),
                       [cv2.IMWRITE_PNG_COMPRESSION, 9]):
        raise OSError(f'could not write {depth_path}')


def _common_intrinsics(matrices: List[Optional[np.ndarray]]) -> Optional[List[float]]:
    """Return ``[fx, fy, cx, cy]`` when every frame has the same K, else None."""
    if not matrices or any(k is None for k in matrices):
        return None
    if not all(np.allclose(k, matrices[0], atol=1e-6) for k in matrices[1:]):
        return None
    k = matrices[0]
    return [round(float(v), 6) for v in (k[0, 0], k[1, 1], k[0, 2], k[1, 2])]


def pack_source(spec: Dict[str, Any], base_dir: str, out_dir: str, root: str,
                size: Sequence[int]) -> Dict[str, Any]:
    """Pack one source into ``out_dir/root``; return its ``type: folder`` entry and counts.

    Frames are read by index through the reader's ``__getitem__``, which replaces a corrupt
    frame by the next good one (logged, counted in ``skipped``); such repeats are dropped by
    name, so every good frame is written once.

    Returns:
        ``{'spec': folder source entry, 'frames': int, 'skipped': int, 'bytes': int}``.
    """
    dataset = build_source(spec, None, base_dir)
    folder = os.path.join(out_dir, root)
    os.makedirs(os.path.join(folder, 'rgb'))
    os.makedirs(os.path.join(folder, 'depth'))
    seen, matrices = set(), []
    for index in range(len(dataset)):
        sample = dataset[index]
        if sample['name'] in seen:
            continue
        seen.add(sample['name'])
        sample = shrink(sample, size)
        _write_frame(folder, len(matrices), sample)
        matrices.append(sample.get('K'))
    entry = {'type': 'folder', 'name': spec.get('name', spec['type']), 'root': root,
             'rgb_glob': RGB_GLOB, 'depth_glob': DEPTH_GLOB, 'encoding': 'mm'}
    intrinsics = _common_intrinsics(matrices)
    if intrinsics is not None:
        entry['intrinsics'] = intrinsics
    if 'weight' in spec:
        entry['weight'] = float(spec['weight'])
    size_bytes = sum(item.stat().st_size for part in ('rgb', 'depth')
                     for item in os.scandir(os.path.join(folder, part)))
    return {'spec': entry, 'frames': len(matrices), 'skipped': dataset.skipped_total,
            'bytes': size_bytes}


def _folder_name(index: int, spec: Dict[str, Any]) -> str:
    """Return ``NN_<name>`` for the ``index``-th source of a section."""
    return f'{index:02d}_{spec.get("name", spec["type"])}'


def _base_dir_text(out_dir: str) -> str:
    """Return ``out_dir`` relative to the repository root when inside it, else absolute."""
    relative = os.path.relpath(os.path.realpath(out_dir), os.path.realpath(REPO_ROOT))
    inside = relative != os.pardir and not relative.startswith(os.pardir + os.sep)
    return relative.replace(os.sep, '/') if inside else os.path.abspath(out_dir)


def pack(cfg: Dict[str, Any], out_dir: str, size: Sequence[int],
         config_files: Sequence[str] = ()) -> Dict[str, List[Dict[str, Any]]]:
    """Pack ``data``, ``val`` and ``holdout`` sources of ``cfg`` and write ``pack.yaml``.

    Args:
        cfg: The resolved config as plain dicts.
        out_dir: The pack folder; replaced if it exists.
        size: (H, W) box each frame is shrunk to fit.
        config_files: The config files ``cfg`` came from (named in ``pack.yaml``).

    Returns:
        Section (``data``, ``val``, ``holdout``) -> list of ``pack_source`` results.
    """
    base_dir = resolve_data_root(cfg['data']['base_dir'])
    if os.path.isdir(out_dir):
        shutil.rmtree(out_dir)
    sections = {'data': cfg['data']['sources'] or [],
                **{key: (cfg.get(key) or {}).get('sources') or [] for key in ('val', 'holdout')}}
    results = {}
    for section, specs in sections.items():
        results[section] = []
        for index, spec in enumerate(specs):
            root = f'{section}/{_folder_name(index, spec)}'
            result = pack_source(spec, base_dir, out_dir, root, size)
            results[section].append(result)
            _logger.info('%s %s: %d frames, %.2f MB, %d skipped (%s)', section,
                         result['spec']['name'], result['frames'], result['bytes'] / 1e6,
                         result['skipped'], report_path(os.path.join(base_dir, spec['root'])))
    write_overlay(os.path.join(out_dir, 'pack.yaml'), _base_dir_text(out_dir), results,
                  f'# Written by training.pack_data from {", ".join(config_files) or "defaults"} '
                  f'(frames shrunk to fit {size[0]}x{size[1]}); merge it after that config.')
    return results


def write_overlay(path: str, base_dir: str, results: Dict[str, List[Dict[str, Any]]],
                  header: str) -> None:
    """Write the config overlay: ``data.base_dir`` and one flow mapping per source line."""
    lines = [header, 'data:', f'  base_dir: {json.dumps(base_dir)}', '  sources:']
    for section in ('data', 'val', 'holdout'):
        if section != 'data' and results.get(section):
            lines += [f'{section}:', '  sources:']
        lines += ['    - ' + yaml.safe_dump(r['spec'], default_flow_style=True, sort_keys=False,
                                            width=float('inf')).strip()
                  for r in results.get(section, [])]
    with open(path, 'w') as stream:
        stream.write('\n'.join(lines) + '\n')


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """Parse the command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--config', action='append', default=[],
                        help='YAML merged over training/configs/default.yaml (repeatable)')
    parser.add_argument('--out', default='gpu_pack', help='pack folder (replaced)')
    parser.add_argument('--size', type=int, nargs=2, default=list(DEFAULT_SIZE),
                        metavar=('H', 'W'), help='box each frame is shrunk to fit')
    parser.add_argument('overrides', nargs='*', help='config overrides key=value')
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Pack from the command line; returns the exit status."""
    logging.basicConfig(level=logging.INFO, format='%(levelname)s %(name)s: %(message)s')
    args = parse_args(sys.argv[1:] if argv is None else argv)
    cfg = to_plain(load_config(args.config, args.overrides))
    results = pack(cfg, args.out, args.size, args.config)
    every = [r for section in results.values() for r in section]
    _logger.info('packed %d frames, %.2f MB, %d skipped into %s', sum(r['frames'] for r in every),
                 sum(r['bytes'] for r in every) / 1e6, sum(r['skipped'] for r in every),
                 os.path.join(args.out, 'pack.yaml'))
    return 0


if __name__ == '__main__':
    sys.exit(main())
