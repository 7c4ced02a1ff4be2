"""Generic folder of RGB/depth pairs, described by glob patterns and a depth encoding."""

import os

from training.data.datasets.base import Frame
from training.data.datasets.base import FrameListDataset
from training.data.datasets.base import intrinsics_matrix
from training.data.datasets.base import require_frames
from training.data.datasets.pairing import pair_globs


def glob_frames(root: str, rgb_glob: str, depth_glob: str, encoding: str,
                depth_params=None, intrinsics=None, extra_globs=None,
                strict: bool = False) -> list:
    """List the frames of a folder whose colour and depth files pair by glob wildcards.

    Args:
        root: Dataset folder.
        rgb_glob: Colour pattern relative to ``root`` (see ``pairing``).
        depth_glob: Depth pattern with the same wildcards.
        encoding: Depth encoding (``vd_ros.core.depth_codec.ENCODINGS``).
        depth_params: Parameters of the encoding.
        intrinsics: Camera matrix for every frame (``intrinsics_matrix`` formats) or None.
        extra_globs: Role -> pattern of aligned extras (``pose``, ``label``, ``meta``).
        strict: A file without its partners raises ``ValueError`` (``pair_globs``) instead of
            being left out.

    Returns:
        List of ``Frame`` sorted by key.
    """
    matrix = intrinsics_matrix(intrinsics)
    pairs = pair_globs(root, rgb_glob, depth_glob, extra_globs, strict)
    return [Frame(name=depth, rgb_path=rgb, depth_path=depth, encoding=encoding,
                  depth_params=dict(depth_params or {}), intrinsics=matrix, extras=extras)
            for _, rgb, depth, extras in pairs]


def uses_globs(source: str, rgb_glob: str | None, depth_glob: str | None) -> bool:
    """Tell whether a layout reader was given explicit globs instead of its official layout.

    Args:
        source: Dataset name for the error message.
        rgb_glob: Colour pattern or None.
        depth_glob: Depth pattern or None.

    Returns:
        True when both patterns are given, False when neither is.

    Raises:
        ValueError: When only one is given.
    """
    if (rgb_glob is None) != (depth_glob is None):
        raise ValueError(f'{source} needs both rgb_glob and depth_glob or neither, got '
                         f'{rgb_glob!r} and {depth_glob!r}')
    return rgb_glob is not None


class FolderDataset(FrameListDataset):
    """Any folder of RGB/depth pairs: glob patterns plus the depth encoding or scale.

    Example config: ``{type: folder, root: data/x, rgb_glob: 'rgb/*.png',
    depth_glob: 'depth/*.png', encoding: scale, depth_params: {scale: 0.001},
    intrinsics: [fx, fy, cx, cy]}``.
    """

    source = 'folder'

    def __init__(self, root: str, rgb_glob: str, depth_glob: str, encoding: str = 'mm',
                 depth_params=None, intrinsics=None, extra_globs=None, transform=None,
                 max_skips: int = 32, resize_rgb_to_depth: bool = False):
        """Find and pair the files.

        Args:
            root: Dataset folder.
            rgb_glob: See ``glob_frames``.
            depth_glob: See ``glob_frames``.
            encoding: See ``glob_frames``.
            depth_params: See ``glob_frames``.
            intrinsics: See ``glob_frames``.
            extra_globs: See ``glob_frames``.
            transform: See ``RGBDDataset``.
            max_skips: See ``RGBDDataset``.
            resize_rgb_to_depth: See ``FrameListDataset``.

        Raises:
            ValueError: When no pair is found.
        """
        root = os.fspath(root)
        frames = glob_frames(root, rgb_glob, depth_glob, encoding, depth_params, intrinsics,
                             extra_globs)
        super().__init__(require_frames(frames, self.source, root), transform, max_skips,
                         resize_rgb_to_depth)
