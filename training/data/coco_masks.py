"""COCO instance annotations (as CVAT and LabelMe export them) -> per-pixel label images.

Reads ``images`` (``id``, ``file_name``, ``width``, ``height``), ``categories`` (``id``,
``name``) and ``annotations`` (``image_id``, ``category_id``, ``segmentation``). A segmentation
is a list of polygons ``[x1, y1, x2, y2, ...]`` in pixels, or run-length encoded (``{counts,
size}``, counts as a list or COCO's compressed string; CVAT writes masks that way with
``iscrowd: 1``).

Rasterisation (OpenCV ``fillPoly``): every vertex is rounded to the nearest pixel and edges
are filled, as LabelMe draws its own masks (``(1, 1) (5, 1) (5, 3) (1, 3)`` covers columns 1-5
of rows 1-3). Annotations are painted largest first, so a small object in front of a larger
one keeps its pixels where they overlap. Pixels no annotation covers get label 0
(background / unlabelled).

Label ids: without a class list, 0 is ``background`` and the categories follow in the order of
their ids (ids 3, 7, 9 become 1, 2, 3); with a class list (``training.data.class_list``), a
category's label id is the index of its name there. Errors name the file, the entry and the
offending value.
"""

import dataclasses
import json
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from training.data.class_list import ClassList

BACKGROUND = 'background'


class CocoFormatError(ValueError):
    """A COCO annotation file that cannot be read as the module docstring describes."""


@dataclasses.dataclass(frozen=True)
class CocoImage:
    """One entry of ``images``.

    Attributes:
        image_id: The image id annotations refer to.
        file_name: As written in the file (CVAT: the frame's name, maybe with folders).
        size: (height, width) in pixels.
    """

    image_id: int
    file_name: str
    size: Tuple[int, int]


def _field(entry, key: str, kind, where: str, path: str):
    """Return ``entry[key]`` checked to be of ``kind``, else raise naming ``where``."""
    if not isinstance(entry, dict) or key not in entry:
        raise CocoFormatError(f'{path}: {where} lacks "{key}": {str(entry)[:120]}')
    value = entry[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise CocoFormatError(f'{path}: {where} "{key}" must be {getattr(kind, "__name__", kind)}'
                              f', got {value!r}')
    return value


def rle_counts(counts) -> List[int]:
    """Return the run lengths of a COCO RLE ``counts`` (a list, or the compressed string).

    The string form is COCO's (pycocotools ``rleFrString``): 5 bits per character offset by
    48, a continuation bit 0x20, sign-extended from bit 0x10, and from the fourth run on each
    value stored as the difference to the run two before.

    Raises:
        CocoFormatError: A negative run or an unterminated string.
    """
    if isinstance(counts, list):
        runs = [int(v) for v in counts]
    else:
        runs, position = [], 0
        while position < len(counts):
            value, shift, more = 0, 0, True
            while more:
                if position >= len(counts):
                    raise CocoFormatError(f'RLE string {counts[:40]!r} ends inside a value')
                code = ord(counts[position]) - 48
                value |= (code & 0x1f) << shift
                more = bool(code & 0x20)
                position += 1
                shift += 5
                if not more and code & 0x10:
                    value |= -1 << shift
            if len(runs) > 2:
                value += runs[-2]
            runs.append(value)
    if any(run < 0 for run in runs):
        raise CocoFormatError(f'RLE counts {runs[:10]} hold a negative run')
    return runs


def rle_mask(segmentation: dict, size: Tuple[int, int]) -> np.ndarray:
    """Decode a COCO RLE (column-major runs, starting with a run of zeros) into a bool mask.

    Raises:
        CocoFormatError: A size that differs from the image's or runs that do not cover it.
    """
    height, width = size
    if [int(v) for v in segmentation.get('size', ())] != [height, width]:
        raise CocoFormatError(f'RLE size {segmentation.get("size")} differs from the image '
                              f'size [{height}, {width}]')
    runs = rle_counts(segmentation.get('counts', []))
    if sum(runs) != height * width:
        raise CocoFormatError(f'RLE runs cover {sum(runs)} pixels, the image has '
                              f'{height * width}')
    values = np.repeat(np.arange(len(runs)) % 2, runs).astype(bool)  # (H * W,) column-major
    return values.reshape(width, height).T


def polygon_mask(polygons: Sequence[Sequence[float]], size: Tuple[int, int]) -> np.ndarray:
    """Rasterise COCO polygons (module docstring) into a bool mask of ``size``.

    Raises:
        CocoFormatError: A polygon with an odd number of values, fewer than 3 points, or
            non-finite coordinates.
    """
    mask = np.zeros(size, np.uint8)
    for polygon in polygons:
        values = np.asarray(polygon, dtype=np.float64).ravel()
        if values.size % 2 or values.size < 6 or not np.isfinite(values).all():
            raise CocoFormatError(f'polygon {list(values[:8])}... must hold at least 3 finite '
                                  f'(x, y) points, got {values.size} values')
        points = np.round(values.reshape(-1, 2)).astype(np.int32)  # (P, 2) x, y
        cv2.fillPoly(mask, [points], 1)
    return mask.astype(bool)


class CocoAnnotations:
    """A parsed COCO file: its images, categories and the label image of each image.

    Attributes:
        path: The file.
        images: The image entries, in file order.
        categories: Category id -> name.
    """

    def __init__(self, data: dict, path: str = '<coco>'):
        """Check the structure; see :func:`read_coco`.

        Raises:
            CocoFormatError: Missing lists or keys, wrong types, duplicate ids, annotations of
                unknown images or categories.
        """
        self.path = path
        if not isinstance(data, dict):
            raise CocoFormatError(f'{path}: a COCO file is a JSON object, got '
                                  f'{type(data).__name__}')
        lists = {key: _field(data, key, list, 'the file', path)
                 for key in ('images', 'annotations', 'categories')}
        self.images, by_id = [], {}
        for index, entry in enumerate(lists['images']):
            where = f'images[{index}]'
            image = CocoImage(_field(entry, 'id', int, where, path),
                              _field(entry, 'file_name', str, where, path),
                              (_field(entry, 'height', int, where, path),
                               _field(entry, 'width', int, where, path)))
            if image.image_id in by_id:
                raise CocoFormatError(f'{path}: {where}: image id {image.image_id} used twice')
            by_id[image.image_id] = image
            self.images.append(image)
        self.categories = {}
        for index, entry in enumerate(lists['categories']):
            where = f'categories[{index}]'
            category = _field(entry, 'id', int, where, path)
            if category in self.categories:
                raise CocoFormatError(f'{path}: {where}: category id {category} used twice')
            self.categories[category] = _field(entry, 'name', str, where, path)
        self._annotations = {image.image_id: [] for image in self.images}
        for index, entry in enumerate(lists['annotations']):
            where = f'annotations[{index}] (id {entry.get("id")})' \
                if isinstance(entry, dict) else f'annotations[{index}]'
            image_id = _field(entry, 'image_id', int, where, path)
            category = _field(entry, 'category_id', int, where, path)
            segmentation = _field(entry, 'segmentation', (list, dict), where, path)
            if image_id not in by_id:
                raise CocoFormatError(f'{path}: {where}: image_id {image_id} is not in images')
            if category not in self.categories:
                raise CocoFormatError(f'{path}: {where}: category_id {category} is not in '
                                      f'categories {sorted(self.categories)}')
            self._annotations[image_id].append((where, category, segmentation))

    def class_list(self) -> ClassList:
        """Return background + the category names in the order of their ids."""
        return ClassList((BACKGROUND, *(self.categories[c] for c in sorted(self.categories))),
                         None, self.path)

    def label_ids(self, class_names: Optional[Sequence[str]] = None) -> Dict[int, int]:
        """Map category ids to label ids (module docstring).

        Raises:
            CocoFormatError: A category whose name is not in ``class_names``.
        """
        names = list(class_names) if class_names is not None else list(
            self.class_list().names)
        missing = [name for name in self.categories.values() if name not in names]
        if missing:
            raise CocoFormatError(f'{self.path}: categories {missing} are not in the class list '
                                  f'{names}')
        return {category: names.index(name) for category, name in self.categories.items()}

    def label_image(self, image: CocoImage, label_ids: Dict[int, int]) -> np.ndarray:
        """Rasterise the annotations of ``image`` into an int64 (H, W) label image.

        Raises:
            CocoFormatError: A malformed segmentation, naming the annotation.
        """
        masks = []
        for where, category, segmentation in self._annotations[image.image_id]:
            try:
                mask = rle_mask(segmentation, image.size) if isinstance(segmentation, dict) \
                    else polygon_mask(segmentation, image.size)
            except (CocoFormatError, TypeError, ValueError) as error:
                raise CocoFormatError(f'{self.path}: {where} of image {image.file_name!r}: '
                                      f'{error}') from error
            masks.append((int(mask.sum()), label_ids[category], mask))
        label = np.zeros(image.size, np.int64)
        for _, label_id, mask in sorted(masks, key=lambda item: -item[0]):  # largest first
            label[mask] = label_id
        return label


def read_coco(path: str) -> CocoAnnotations:
    """Read and check a COCO annotation file.

    Raises:
        FileNotFoundError: Missing file.
        CocoFormatError: Not JSON, or not the structure of the module docstring.
    """
    with open(path, encoding='utf-8') as stream:
        try:
            data = json.load(stream)
        except json.JSONDecodeError as error:
            raise CocoFormatError(f'{path}: not valid JSON: {error}') from error
    return CocoAnnotations(data, path)
