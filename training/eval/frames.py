"""The real RGB-D evaluation frames in ../shared/data.

Without a named held-out split: 7-Scenes redkitchen and YCB-Video videos 0000/0001. With one
(``holdout.sources`` of a training config): those frames, any reader, per source.
"""

import dataclasses
import os

import numpy as np

from training.data.correspondences import lens_distortion, load_posed_frames, POSED_TYPES
from training.data.datasets import build_source
from training.data.shared_paths import report_path
from training.eval.pose_estimation import Intrinsics, SEVEN_SCENES_INTRINSICS
from vd_ros.core.depth_codec import read_depth, read_rgb

SEVEN_SCENES_DIR = '7scenes_redkitchen'
SEVEN_SCENES_NUM_FRAMES = 400
YCBV_DIR = os.path.join('ycbv', 'frames')
YCBV_VIDEOS = ('0000', '0001')
YCBV_FRAME_IDS = tuple(range(1, 21))
# YCB-Video camera 1 (data/README.md; also in every meta.mat).
YCBV_INTRINSICS = Intrinsics(1066.778, 1067.487, 312.987, 241.311)


@dataclasses.dataclass
class RGBDFrame:
    """One decoded RGB-D frame.

    Attributes:
        name: Dataset-qualified frame name, e.g. '7scenes/000120', or for held-out frames the
            depth file relative to ../shared.
        dataset: '7scenes' or 'ycbv'; for held-out frames the source's ``name`` or ``type``.
        rgb: uint8 (H, W, 3) RGB image.
        depth_m: float32 (H, W) measured depth in metres, 0 = invalid.
        intrinsics: Camera intrinsics, or None when the reader does not know them.
        cam_to_world: (4, 4) ground-truth camera pose, or None when not known.
    """

    name: str
    dataset: str
    rgb: np.ndarray
    depth_m: np.ndarray
    intrinsics: Intrinsics | None
    cam_to_world: np.ndarray | None = None


def seven_scenes_frame(data_root: str, index: int) -> RGBDFrame:
    """Load 7-Scenes redkitchen frame ``index`` with its pose.

    Args:
        data_root: The ../shared/data folder.
        index: Frame number, 0..399.

    Returns:
        The frame (depth: uint16 mm, 0 and 65535 invalid).

    Raises:
        ValueError: If ``index`` is out of range.
        FrameReadError: If a file is missing or corrupt.
    """
    if not 0 <= index < SEVEN_SCENES_NUM_FRAMES:
        raise ValueError(f'7-Scenes frame index {index} outside 0..{SEVEN_SCENES_NUM_FRAMES - 1}')
    stem = os.path.join(data_root, SEVEN_SCENES_DIR, f'frame-{index:06d}')
    return RGBDFrame(
        name=f'7scenes/{index:06d}', dataset='7scenes', rgb=read_rgb(stem + '.color.jpg'),
        depth_m=read_depth(stem + '.depth.png', '7scenes'), intrinsics=SEVEN_SCENES_INTRINSICS,
        cam_to_world=np.loadtxt(stem + '.pose.txt').reshape(4, 4))


def ycbv_frame(data_root: str, video: str, frame_id: int) -> RGBDFrame:
    """Load a YCB-Video frame (depth uint16 with factor_depth 10000).

    Args:
        data_root: The ../shared/data folder.
        video: '0000' or '0001'.
        frame_id: 1..20.

    Returns:
        The frame (no camera pose).

    Raises:
        ValueError: If the video or frame id is not in the shared subset.
        FrameReadError: If a file is missing or corrupt.
    """
    if video not in YCBV_VIDEOS or frame_id not in YCBV_FRAME_IDS:
        raise ValueError(f'YCB-Video frame {video}/{frame_id} is not in the shared subset '
                         f'(videos {YCBV_VIDEOS}, frames 1..20)')
    stem = os.path.join(data_root, YCBV_DIR, video, f'{frame_id:06d}')
    return RGBDFrame(
        name=f'ycbv/{video}/{frame_id:06d}', dataset='ycbv', rgb=read_rgb(stem + '-color.png'),
        depth_m=read_depth(stem + '-depth.png', 'ycbv'), intrinsics=YCBV_INTRINSICS)


def completion_frames(data_root: str, per_dataset: int) -> list[RGBDFrame]:
    """Evenly spaced evaluation frames: ``per_dataset`` from 7-Scenes and from YCB-Video.

    Args:
        data_root: The ../shared/data folder.
        per_dataset: Frames per dataset (1..40; YCB-Video alternates its two videos).

    Returns:
        7-Scenes frames first, then YCB-Video frames.

    Raises:
        ValueError: If ``per_dataset`` is not in 1..40.
    """
    ycbv_total = len(YCBV_VIDEOS) * len(YCBV_FRAME_IDS)
    if not 1 <= per_dataset <= ycbv_total:
        raise ValueError(f'frames per dataset must be in 1..{ycbv_total}, got {per_dataset}')
    scenes = np.linspace(0, SEVEN_SCENES_NUM_FRAMES - 1, per_dataset).round().astype(int)
    frames = [seven_scenes_frame(data_root, int(index)) for index in scenes]
    ycbv = np.linspace(0, ycbv_total - 1, per_dataset).round().astype(int)
    for flat in ycbv:
        video = YCBV_VIDEOS[flat % len(YCBV_VIDEOS)]
        frames.append(ycbv_frame(data_root, video, YCBV_FRAME_IDS[flat // len(YCBV_VIDEOS)]))
    return frames


def evenly_spaced(count: int, wanted: int) -> list[int]:
    """Return ``wanted`` evenly spaced indices of ``range(count)`` (all when 0 or >= count)."""
    if wanted <= 0 or wanted >= count:
        return list(range(count))
    return [int(i) for i in np.linspace(0, count - 1, wanted).round()]


def holdout_frames(sources: list[dict], data_root: str, per_source: int) -> list[RGBDFrame]:
    """Load the held-out frames a config names (``holdout.sources``).

    Args:
        sources: Source entries as in ``data.sources`` (``type``, ``root``, ``select`` /
            ``exclude`` ranges, optional ``name``; ``training/data/datasets/factory.py``).
        data_root: Folder relative roots resolve against (the ../shared/data folder).
        per_source: Evenly spaced frames taken per source; 0 takes every frame.

    Returns:
        The frames in source order; ``dataset`` is the source's ``name`` (default ``type``),
        ``name`` the depth file relative to ../shared.

    Raises:
        ValueError: A negative ``per_source`` or a bad source entry (unknown type, missing
            root, bad ranges).
        FrameError: A frame that cannot be read (after the reader's own skipping).
    """
    if per_source < 0:
        raise ValueError(f'frames per held-out source must be >= 0 (0: all), got {per_source}')
    frames = []
    for spec in sources:
        dataset = build_source(spec, base_dir=data_root)
        for index in evenly_spaced(len(dataset), per_source):
            sample = dataset[index]
            matrix = sample.get('K')
            intrinsics = None if matrix is None else Intrinsics(
                float(matrix[0, 0]), float(matrix[1, 1]), float(matrix[0, 2]),
                float(matrix[1, 2]))
            frames.append(RGBDFrame(
                name=report_path(sample['name']), dataset=spec.get('name', spec['type']),
                rgb=sample['rgb'], depth_m=sample['depth'], intrinsics=intrinsics,
                cam_to_world=sample.get('pose')))
    return frames


# Frame rate of a posed source's frame list: 7-Scenes records at 30 Hz; TUM lists are timed.
SEVEN_SCENES_RATE_HZ = 30.0


def posed_holdout_sequences(sources: list[dict], data_root: str
                            ) -> tuple[dict[str, list[RGBDFrame]], dict[str, float]]:
    """Load the held-out sources that have ground-truth poses, one sequence per source.

    Args:
        sources: ``holdout.sources`` entries; only 7-Scenes and TUM ones are read (one
            ``select`` range each, so the frames are consecutive).
        data_root: Folder relative roots resolve against.

    Returns:
        (name -> frames in order, name -> frame rate of the list in Hz: 30 for 7-Scenes, the
        median spacing of the depth time stamps for TUM). ``name`` is the source's ``name``
        (default ``type``); ``RGBDFrame.name`` the depth file relative to ../shared;
        ``RGBDFrame.intrinsics`` carry the lens distortion of the source's camera
        (``lens_distortion``: TUM freiburg1's images are not rectified).
    """
    sequences, rates = {}, {}
    for spec in sources:
        if spec['type'] not in POSED_TYPES:
            continue
        name = spec.get('name', spec['type'])
        posed = load_posed_frames(spec, data_root)
        distortion = lens_distortion(spec)
        sequences[name] = [RGBDFrame(
            name=report_path(frame.name), dataset=name, rgb=frame.rgb, depth_m=frame.depth_m,
            intrinsics=Intrinsics(*frame.intrinsics, distortion=distortion),
            cam_to_world=frame.cam_to_world) for frame in posed]
        if spec['type'] == 'tum':
            stamps = [float(os.path.splitext(os.path.basename(f.name))[0]) for f in posed]
            rates[name] = float(1.0 / np.median(np.diff(stamps)))
        else:
            rates[name] = SEVEN_SCENES_RATE_HZ
    return sequences, rates
