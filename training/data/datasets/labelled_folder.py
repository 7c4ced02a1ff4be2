"""A user's folder of colour, depth and per-pixel label images, paired strictly by glob."""

import dataclasses
import os

import cv2
import numpy as np

from training.data.datasets.base import FrameListDataset
from training.data.datasets.base import require_frames
from training.data.datasets.folder import glob_frames
from vd_ros.core.depth_codec import FrameError


def colour_label_ids(rgb: np.ndarray, class_colors, source: str) -> np.ndarray:
    """Map a colour-coded label image (as CVAT's segmentation-mask export) to label ids.

    Args:
        rgb: (H, W, 3) uint8 RGB label image.
        class_colors: ``(r, g, b)`` by label id.
        source: The label file, for messages.

    Returns:
        (H, W) int64 label ids.

    Raises:
        ValueError: Two classes with one colour, or a colour no class has (naming it).
    """
    keys = [(r << 16) | (g << 8) | b for r, g, b in class_colors]
    if len(set(keys)) != len(keys):
        shared = next(c for i, c in enumerate(class_colors) if keys.index(keys[i]) != i)
        raise ValueError(f'{source}: colour label images need one colour per class, but '
                         f'{list(shared)} belongs to several classes of the class list')
    packed = (rgb[..., 0].astype(np.int64) << 16) | (rgb[..., 1].astype(np.int64) << 8) | \
        rgb[..., 2]  # (H, W)
    values, inverse = np.unique(packed, return_inverse=True)
    lookup = {key: index for index, key in enumerate(keys)}
    unknown = [int(v) for v in values if int(v) not in lookup]
    if unknown:
        colour = [unknown[0] >> 16, (unknown[0] >> 8) & 255, unknown[0] & 255]
        raise ValueError(f'{source}: colour {colour} ({int((packed == unknown[0]).sum())} '
                         'pixels) is not a colour of the class list')
    ids = np.array([lookup[int(v)] for v in values], np.int64)
    return ids[inverse.reshape(packed.shape)]


class LabelledFolderDataset(FrameListDataset):
    """Colour, depth and label PNGs whose names pair by glob wildcards (``pairing``).

    Unlike ``folder``, a file without its partners is an error (naming it), not left out: a
    missing label or depth image is a mistake in a labelled set; so is an unreadable frame
    (``ValueError``, not skipped). A label image holds the label id per pixel (8 or 16 bit, one
    channel; 0 = background / unlabelled), or, when the class list gives colours, each class's
    colour (RGB or RGBA, as CVAT's segmentation-mask export writes them). With
    ``class_names`` a value outside the list is an error naming the label file and the value.

    Example config: ``{type: labelled_folder, root: my_frames, rgb_glob: 'color/*.png',
    depth_glob: 'depth/*.png', label_glob: 'label/*.png', encoding: mm}``.
    """

    source = 'labelled_folder'

    def __init__(self, root: str, rgb_glob: str, depth_glob: str, label_glob: str,
                 encoding: str = 'mm', depth_params=None, intrinsics=None, class_names=None,
                 class_colors=None, transform=None, max_skips: int = 32):
        """Find and pair the files.

        Args:
            root: Dataset folder.
            rgb_glob: Colour pattern relative to ``root``.
            depth_glob: Depth pattern with the same wildcards.
            label_glob: Label pattern with the same wildcards.
            encoding: Depth encoding (``vd_ros.core.depth_codec.ENCODINGS``).
            depth_params: Parameters of the encoding (e.g. ``{scale: 0.001}``).
            intrinsics: Camera matrix for every frame, or None.
            class_names: Names by label id (the class list), checked against every label
                image; None: no check.
            class_colors: ``(r, g, b)`` by label id, to read colour-coded label images;
                None: label images must hold ids.
            transform: See ``RGBDDataset``.
            max_skips: See ``RGBDDataset``.

        Raises:
            ValueError: A file without its partners, or no frame at all.
        """
        root = os.fspath(root)
        frames = glob_frames(root, rgb_glob, depth_glob, encoding, depth_params, intrinsics,
                             {'label': label_glob}, strict=True)
        super().__init__(require_frames(frames, self.source, root), transform, max_skips)
        self.class_names = None if class_names is None else tuple(class_names)
        self.class_colors = None if not class_colors else [tuple(c) for c in class_colors]

    def read_labels(self, path: str) -> np.ndarray:
        """Read one label image as (H, W) int64 label ids, checked against the class list.

        Raises:
            ValueError: Unreadable, a colour image without class colours, or a value outside
                the class list; naming the file.
        """
        data = np.fromfile(path, dtype=np.uint8) if os.path.isfile(path) else None
        image = None if data is None or not data.size else cv2.imdecode(
            data, cv2.IMREAD_UNCHANGED)
        if image is None:
            raise ValueError(f'{path}: missing, corrupt or truncated label image')
        if image.ndim == 3 and image.shape[2] in (3, 4):
            if self.class_colors is None:
                raise ValueError(f'{path}: a colour label image {image.shape} needs colours in '
                                 'the class list (name r g b); or save one channel of label ids')
            label = colour_label_ids(image[..., 2::-1], self.class_colors, path)  # BGR -> RGB
        elif image.ndim == 2:
            label = image.astype(np.int64)
        else:
            raise ValueError(f'{path}: label image of shape {image.shape}: expected one channel '
                             'of label ids or an RGB image of class colours')
        if self.class_names is not None:
            bad = (label < 0) | (label >= len(self.class_names))
            if bad.any():
                shown = ', '.join(f'{i} {name}' for i, name in enumerate(self.class_names[:8]))
                raise ValueError(
                    f'{path}: label value {int(label[bad][0])} ({int(bad.sum())} pixels) is not '
                    f'in the class list of {len(self.class_names)} classes (ids '
                    f'0..{len(self.class_names) - 1}: {shown}'
                    f'{", ..." if len(self.class_names) > 8 else ""})')
        return label

    def load(self, index: int) -> dict:
        """Load frame ``index`` with its label ids.

        Raises:
            ValueError: An unreadable frame, labels of another size than the depth image, or
                a label image :meth:`read_labels` refuses.
        """
        frame = self.frames[index]
        try:
            sample = self.load_frame(dataclasses.replace(frame, extras={}))  # labels: below
        except FrameError as error:
            raise ValueError(f'bad frame in a labelled folder: {error}') from error
        path = frame.extras['label']
        label = self.read_labels(path)
        if label.shape != sample['depth'].shape:
            raise ValueError(f'{path}: label {label.shape} and depth {sample["depth"].shape} '
                             'sizes differ')
        sample['label'] = label
        return sample
