"""Colour/depth frames labelled by a COCO polygon file (as CVAT and LabelMe export it)."""

import logging
import os

from training.data.coco_masks import read_coco
from training.data.datasets.base import Frame
from training.data.datasets.base import FrameListDataset
from training.data.datasets.base import intrinsics_matrix
from training.data.datasets.base import require_frames
from training.data.datasets.pairing import match_glob
from training.data.datasets.pairing import require_partners
from vd_ros.core.depth_codec import FrameError

_logger = logging.getLogger(__name__)


class CocoLabelledDataset(FrameListDataset):
    """Frames whose labels are rasterised from a COCO annotation file (``coco_masks``).

    Every COCO image is matched to a colour file found by ``rgb_glob``: by its path relative
    to ``root``, else by its file name alone when that is unique; the colour file's depth
    partner (same wildcard captures, ``depth_glob``) is required. Colour files the COCO file
    does not list are left out (logged). Frames are sorted by colour file.

    Example config: ``{type: coco, root: my_frames, annotations: annotations.json,
    rgb_glob: 'color/*.png', depth_glob: 'depth/*.png', encoding: mm}``.

    Attributes:
        coco: The parsed annotation file.
        label_ids: Category id -> label id.
    """

    source = 'coco'

    def __init__(self, root: str, annotations: str, rgb_glob: str, depth_glob: str,
                 encoding: str = 'mm', depth_params=None, intrinsics=None, class_names=None,
                 transform=None, max_skips: int = 32):
        """Read the annotations and pair them with the colour and depth files.

        Args:
            root: Dataset folder.
            annotations: The COCO JSON file, relative to ``root`` or absolute.
            rgb_glob: Colour pattern relative to ``root``.
            depth_glob: Depth pattern with the same wildcards.
            encoding: Depth encoding (``vd_ros.core.depth_codec.ENCODINGS``).
            depth_params: Parameters of the encoding.
            intrinsics: Camera matrix for every frame, or None.
            class_names: Names by label id; None: background + the categories by id.
            transform: See ``RGBDDataset``.
            max_skips: See ``RGBDDataset``.

        Raises:
            CocoFormatError: A malformed file, or a category outside ``class_names``.
            ValueError: A COCO image without a colour file, a colour file without its depth
                partner, or no frame.
        """
        root = os.fspath(root)
        self.coco = read_coco(os.path.join(root, annotations))
        self.label_ids = self.coco.label_ids(class_names)
        rgb, depth = match_glob(root, rgb_glob), match_glob(root, depth_glob)
        require_partners(root, {'colour': (rgb_glob, rgb), 'depth': (depth_glob, depth)})
        by_path = {os.path.relpath(path, root).replace(os.sep, '/'): key
                   for key, path in rgb.items()}
        by_name = {}
        for relative, key in by_path.items():
            by_name.setdefault(os.path.basename(relative), []).append(key)
        matrix = intrinsics_matrix(intrinsics)
        self._images, frames = {}, []
        for image in self.coco.images:
            name = image.file_name.replace('\\', '/')
            key = by_path.get(name[2:] if name.startswith('./') else name)
            if key is None and len(by_name.get(os.path.basename(name), [])) == 1:
                key = by_name[os.path.basename(name)][0]
            if key is None:
                raise ValueError(
                    f'{self.coco.path}: image {image.file_name!r} (id {image.image_id}) has no '
                    f'colour file matching {rgb_glob!r} under {root!r}'
                    + (' (its name matches several)' if by_name.get(os.path.basename(name))
                       else ''))
            frames.append(Frame(name=depth[key], rgb_path=rgb[key], depth_path=depth[key],
                                encoding=encoding, depth_params=dict(depth_params or {}),
                                intrinsics=matrix))
            self._images[depth[key]] = image
        if len(frames) < len(rgb):
            _logger.info('%s: %d colour files are not in %s and are left out', root,
                         len(rgb) - len(frames), self.coco.path)
        frames.sort(key=lambda frame: frame.rgb_path)
        super().__init__(require_frames(frames, self.source, root), transform, max_skips)

    def load(self, index: int) -> dict:
        """Load frame ``index`` with its rasterised label image.

        Raises:
            ValueError: An unreadable frame (not skipped: a labelled set is small), or the COCO
                image size differs from the depth image's.
        """
        frame = self.frames[index]
        try:
            sample = self.load_frame(frame)
        except FrameError as error:
            raise ValueError(f'bad frame of {self.coco.path}: {error}') from error
        image = self._images[frame.name]
        if image.size != sample['depth'].shape:
            raise ValueError(f'{self.coco.path}: image {image.file_name!r} is {image.size[1]}x'
                             f'{image.size[0]}, its depth {frame.depth_path} '
                             f'{sample["depth"].shape[1]}x{sample["depth"].shape[0]}')
        sample['label'] = self.coco.label_image(image, self.label_ids)
        return sample
