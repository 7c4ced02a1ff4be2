"""A user's folder of colour, depth and per-pixel label images, paired strictly by glob."""

import os

from training.data.datasets.base import FrameListDataset
from training.data.datasets.base import require_frames
from training.data.datasets.folder import glob_frames


class LabelledFolderDataset(FrameListDataset):
    """Colour, depth and label PNGs whose names pair by glob wildcards (``pairing``).

    Unlike ``folder``, a file without its partners is an error (naming it), not left out: a
    missing label or depth image is a mistake in a labelled set. Label images hold the label
    id per pixel (8 or 16 bit, one channel; 0 = background / unlabelled); with
    ``class_names`` a value outside the list is an error naming the label file and the value.

    Example config: ``{type: labelled_folder, root: my_frames, rgb_glob: 'color/*.png',
    depth_glob: 'depth/*.png', label_glob: 'label/*.png', encoding: mm}``.
    """

    source = 'labelled_folder'

    def __init__(self, root: str, rgb_glob: str, depth_glob: str, label_glob: str,
                 encoding: str = 'mm', depth_params=None, intrinsics=None, class_names=None,
                 transform=None, max_skips: int = 32):
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

    def load(self, index: int) -> dict:
        """Load frame ``index``; check its labels against the class list.

        Raises:
            ValueError: A label value outside ``class_names``, naming the label file.
        """
        sample = self.load_frame(self.frames[index])
        label = sample['label']
        if self.class_names is not None:
            bad = (label < 0) | (label >= len(self.class_names))
            if bad.any():
                shown = ', '.join(f'{i} {name}' for i, name in enumerate(self.class_names[:8]))
                raise ValueError(
                    f'{self.frames[index].extras["label"]}: label value {int(label[bad][0])} '
                    f'({int(bad.sum())} pixels) is not in the class list of '
                    f'{len(self.class_names)} classes (ids 0..{len(self.class_names) - 1}: '
                    f'{shown}{", ..." if len(self.class_names) > 8 else ""})')
        return sample
