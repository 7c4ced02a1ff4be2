"""Build the training/evaluation dataset from the ``data`` section of a config.

Schema (YAML)::

    data:
      sources:
        - {type: 7scenes, root: ../shared/data/7scenes_redkitchen, weight: 1.0}
        - {type: ycbv, root: ../shared/data/ycbv, weight: 1.0}
        - {type: tum, root: ../shared/data/open3d_rgbd/other_formats,
           rgb_glob: TUM_color.png, depth_glob: TUM_depth.png}
        - {type: folder, root: my/data, rgb_glob: 'rgb/*.png', depth_glob: 'depth/*.png',
           encoding: scale, depth_params: {scale: 0.001}, intrinsics: [fx, fy, cx, cy]}
        - {type: labelled_folder, root: my/frames, rgb_glob: 'color/*.png',
           depth_glob: 'depth/*.png', label_glob: 'label/*.png', encoding: mm}
        - {type: coco, root: my/frames, annotations: annotations.json,
           rgb_glob: 'color/*.png', depth_glob: 'depth/*.png', encoding: mm}
        - {type: rosbag, root: my.mcap, rgb_topic: /camera/color/image_raw,
           depth_topic: /camera/depth/image_rect_raw, slop: 0.02}

Every source needs ``type`` and ``root``; ``weight`` (default 1.0) is its sampling weight;
``name`` (default ``type``) names it in logs; ``select`` keeps and ``exclude`` drops frames by
index ranges ``[start, stop(, step)]`` (Python slice semantics, ``null`` for an open end) over
the reader's frame list, which is sorted by file name or time stamp: ``select: [300, 400]``,
``exclude: [[0, null, 10], [50, 60]]``. All other keys go to the reader's constructor (see
``DATASET_TYPES``). Relative roots are resolved against ``base_dir``.
"""

import os

from training.data.datasets.coco import CocoLabelledDataset
from training.data.datasets.folder import FolderDataset
from training.data.datasets.labelled_folder import LabelledFolderDataset
from training.data.datasets.mixed import MixedDataset
from training.data.datasets.nyu_labeled import NYULabeledDataset
from training.data.datasets.nyu_raw import NYURawDataset
from training.data.datasets.open3d_sample import Open3DSampleDataset
from training.data.datasets.rosbag import RosbagDataset
from training.data.datasets.scannet import ScanNetDataset
from training.data.datasets.seven_scenes import SevenScenesDataset
from training.data.datasets.sunrgbd import SUNRGBDDataset
from training.data.datasets.tum import TUMDataset
from training.data.datasets.ycbv import YCBVideoDataset
from training.engine.config import to_plain

DATASET_TYPES = {
    'folder': FolderDataset,
    'labelled_folder': LabelledFolderDataset,
    'coco': CocoLabelledDataset,
    '7scenes': SevenScenesDataset,
    'tum': TUMDataset,
    'sunrgbd': SUNRGBDDataset,
    'nyu_raw': NYURawDataset,
    'nyu_labeled': NYULabeledDataset,
    'ycbv': YCBVideoDataset,
    'scannet': ScanNetDataset,
    'open3d': Open3DSampleDataset,
    'rosbag': RosbagDataset,
}


def frame_ranges(value, key: str) -> list:
    """Return ``value`` as a list of slices: one ``[start, stop(, step)]`` or a list of them.

    Raises:
        ValueError: Anything else.
    """
    ranges = value if value and isinstance(value[0], (list, tuple)) else [value]
    slices = []
    for entry in ranges:
        if not isinstance(entry, (list, tuple)) or len(entry) not in (2, 3) or not all(
                v is None or isinstance(v, int) for v in entry) or (
                len(entry) == 3 and entry[2] is not None and entry[2] <= 0):
            raise ValueError(f'{key} takes [start, stop(, step)] ranges of ints or null with a '
                             f'positive step, got {value!r}')
        slices.append(slice(*entry))
    return slices


def select_frames(dataset, select=None, exclude=None):
    """Keep the frames of ``dataset`` in ``select`` and not in ``exclude`` (module docstring).

    Raises:
        ValueError: Bad ranges, a reader without a frame list, or no frame left.
    """
    if select is None and exclude is None:
        return dataset
    if not hasattr(dataset, 'frames'):
        raise ValueError(f'{type(dataset).__name__} has no frame list to select from')
    indices = range(len(dataset.frames))
    kept = set(indices) if select is None else {
        i for part in frame_ranges(select, 'select') for i in indices[part]}
    if exclude is not None:
        kept -= {i for part in frame_ranges(exclude, 'exclude') for i in indices[part]}
    if not kept:
        raise ValueError(f'select={select!r} / exclude={exclude!r} leave no frame of '
                         f'{len(dataset.frames)}')
    dataset.frames = [dataset.frames[i] for i in sorted(kept)]
    return dataset


def build_source(spec, transform=None, base_dir: str = None):
    """Build one reader from its config entry.

    Args:
        spec: Mapping with ``type``, ``root`` and the reader's keyword arguments (``weight``
            and ``name`` are ignored here).
        transform: Callable applied to each sample.
        base_dir: Folder relative roots are resolved against (default: working directory).

    Returns:
        The dataset.

    Raises:
        ValueError: Unknown type, missing root, an argument the reader does not take, or bad
            ``select`` / ``exclude`` ranges.
    """
    spec = to_plain(spec)
    kind = spec.pop('type', None)
    if kind not in DATASET_TYPES:
        raise ValueError(f'unknown dataset type {kind!r}, expected one of {sorted(DATASET_TYPES)}')
    if 'root' not in spec:
        raise ValueError(f'dataset source {kind!r} needs a root: {spec!r}')
    spec.pop('weight', None)
    spec.pop('name', None)
    select, exclude = spec.pop('select', None), spec.pop('exclude', None)
    spec['root'] = os.path.join(base_dir or os.getcwd(), os.path.expanduser(spec['root']))
    try:
        dataset = DATASET_TYPES[kind](transform=transform, **spec)
    except TypeError as error:
        raise ValueError(f'bad arguments for dataset type {kind!r}: {error}') from error
    return select_frames(dataset, select, exclude)


def build_dataset(cfg, transform=None, base_dir: str = None) -> MixedDataset:
    """Build the weighted mixture of the configured sources.

    Args:
        cfg: The ``data`` section (a mapping with ``sources``) or a whole config holding it.
        transform: Callable applied to each sample (e.g. ``build_transform(cfg, train)``).
        base_dir: Folder relative roots are resolved against (default: working directory).

    Returns:
        A ``MixedDataset`` (use ``.sampler(n)`` for weighted drawing).

    Raises:
        ValueError: No sources, or a bad source entry.
    """
    cfg = to_plain(cfg)
    if 'sources' not in cfg and 'data' in cfg:
        cfg = cfg['data']
    specs = cfg.get('sources') or []
    if not specs:
        raise ValueError(f'data config has no sources: {cfg!r}')
    sources = [build_source(spec, transform, base_dir) for spec in specs]
    return MixedDataset(sources, weights=[float(s.get('weight', 1.0)) for s in specs],
                        names=[s.get('name', s.get('type')) for s in specs])
