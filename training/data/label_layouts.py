"""Segmentation label layouts: class names per label id, and checks/remapping of label images.

Every layout follows the model contract: index = label id in the label image, 0 =
background (YCB-Video) or unlabelled (NYUv2-40, SUN RGB-D 37). The class names travel into the
exported ONNX file (``class_names`` metadata).

Label mapping (label image value -> class index):

- ``ycbv``: YCB-Video ``NNNNNN-label.png`` (uint8): 0 = background, 1..21 = YCB object id in
  the order of the dataset's ``models/<id>_<name>`` folders (002_master_chef_can ...
  061_foam_brick). Identity mapping; background is a real class (trained and scored).
- ``nyu40``: NYUv2 40-class labels (Gupta et al. 2013, the layout of most NYUv2 segmentation
  benchmarks): 0 = unlabelled, 1..40 as listed. The official labelled ``.mat`` stores 894 raw
  classes; map them with the 894 -> 40 table (``classMapping40.mat`` of Gupta et al., saved as
  a text file with one integer per raw id, raw id 0 first) through ``label_map`` /
  :func:`remap_labels`. Label 0 is ignored in the loss and in the metrics.
- ``sun37``: SUN RGB-D 37 classes (``seg37list`` of the SUN RGB-D toolbox, the first 37 NYU-40
  classes): 0 = unlabelled, 1..37 as listed. Label 0 is ignored.

A user's own classes (:func:`class_file_layout`): a class-list file
(``training.data.class_list``, names and optional colours) or a COCO annotation file (its
categories, ``training.data.coco_masks``). Label 0 is background and is trained and scored,
as in YCB-Video.
"""

import dataclasses

import numpy as np

from training.data.class_list import read_class_list
from training.data.coco_masks import read_coco
from training.data.shared_paths import report_path

IGNORE_LABEL = -1  # label of pixels that neither train nor count (padding, ignored ids)

YCBV_CLASSES = (
    'background', '002_master_chef_can', '003_cracker_box', '004_sugar_box',
    '005_tomato_soup_can', '006_mustard_bottle', '007_tuna_fish_can', '008_pudding_box',
    '009_gelatin_box', '010_potted_meat_can', '011_banana', '019_pitcher_base',
    '021_bleach_cleanser', '024_bowl', '025_mug', '035_power_drill', '036_wood_block',
    '037_scissors', '040_large_marker', '051_large_clamp', '052_extra_large_clamp',
    '061_foam_brick')

NYU40_CLASSES = (
    'unlabeled', 'wall', 'floor', 'cabinet', 'bed', 'chair', 'sofa', 'table', 'door', 'window',
    'bookshelf', 'picture', 'counter', 'blinds', 'desk', 'shelves', 'curtain', 'dresser',
    'pillow', 'mirror', 'floor mat', 'clothes', 'ceiling', 'books', 'refridgerator',
    'television', 'paper', 'towel', 'shower curtain', 'box', 'whiteboard', 'person',
    'night stand', 'toilet', 'sink', 'lamp', 'bathtub', 'bag', 'otherstructure',
    'otherfurniture', 'otherprop')

SUN37_CLASSES = (
    'unlabeled', 'wall', 'floor', 'cabinet', 'bed', 'chair', 'sofa', 'table', 'door', 'window',
    'bookshelf', 'picture', 'counter', 'blinds', 'desk', 'shelves', 'curtain', 'dresser',
    'pillow', 'mirror', 'floor_mat', 'clothes', 'ceiling', 'books', 'fridge', 'tv', 'paper',
    'towel', 'shower_curtain', 'box', 'whiteboard', 'person', 'night_stand', 'toilet', 'sink',
    'lamp', 'bathtub', 'bag')


@dataclasses.dataclass(frozen=True)
class LabelLayout:
    """A label layout.

    Attributes:
        name: Layout name (``ycbv``, ``nyu40``, ``sun37``).
        class_names: Names by label id, id 0 first.
        ignore_id: Label id left out of loss and metrics (unlabelled), or None.
        class_colors: ``(r, g, b)`` per class when the class list gives colours, else None.
        hint: What to do about a label id outside the layout (ends its error message).
    """

    name: str
    class_names: tuple
    ignore_id: int | None
    class_colors: tuple | None = None
    hint: str = 'raw ids need a label_map'

    @property
    def num_classes(self) -> int:
        """Number of classes K (the head's output channels), id 0 included."""
        return len(self.class_names)


LABEL_LAYOUTS = {
    'ycbv': LabelLayout('ycbv', YCBV_CLASSES, None),
    'nyu40': LabelLayout('nyu40', NYU40_CLASSES, 0),
    'sun37': LabelLayout('sun37', SUN37_CLASSES, 0),
}


def get_layout(name: str) -> LabelLayout:
    """Return the layout called ``name``.

    Raises:
        ValueError: For an unknown name.
    """
    if name not in LABEL_LAYOUTS:
        raise ValueError(f'unknown label layout {name!r}, expected one of {sorted(LABEL_LAYOUTS)}')
    return LABEL_LAYOUTS[name]


def class_file_layout(path: str) -> LabelLayout:
    """Return the layout of a user's class-list file, or of a COCO file's categories.

    Args:
        path: A class-list text file, or a ``.json`` COCO file (background + its categories
            in the order of their ids).

    Raises:
        FileNotFoundError: Missing file.
        ValueError: A malformed file (naming it).
    """
    classes = read_coco(path).class_list() if path.lower().endswith('.json') \
        else read_class_list(path)
    return LabelLayout(f'class list {report_path(path)}', classes.names, None, classes.colors,
                       'add the class to the class list or fix the label image')


def load_label_map(path: str) -> np.ndarray:
    """Read a raw-id -> layout-id table (text, one integer per raw id, raw id 0 first).

    Args:
        path: The table file.

    Returns:
        int64 (N,) lookup table.

    Raises:
        ValueError: For an empty table or negative entries.
    """
    table = np.atleast_1d(np.loadtxt(path, dtype=np.int64))
    if table.ndim != 1 or table.size == 0 or np.any(table < 0):
        raise ValueError(f'{path}: label map must be a non-empty list of ids >= 0, got '
                         f'shape {table.shape}')
    return table


def remap_labels(label: np.ndarray, table: np.ndarray, source: str = '<label>') -> np.ndarray:
    """Map raw label ids through a lookup table (e.g. NYUv2 894 -> 40).

    Args:
        label: Integer label image.
        table: int64 (N,) lookup table from :func:`load_label_map`.
        source: Name used in error messages.

    Returns:
        int64 label image of the same shape.

    Raises:
        ValueError: For a raw id outside the table.
    """
    label = np.asarray(label, dtype=np.int64)
    bad = (label < 0) | (label >= table.size)
    if np.any(bad):
        raise ValueError(f'{source}: raw label {int(label[bad][0])} outside the label map '
                         f'(0..{table.size - 1})')
    return table[label]


def training_labels(label: np.ndarray, layout: LabelLayout,
                    source: str = '<label>') -> np.ndarray:
    """Check a label image against a layout and set ignored ids to ``IGNORE_LABEL``.

    Args:
        label: Integer label image in the layout's ids.
        layout: The layout.
        source: Name used in error messages (the label file).

    Returns:
        int64 label image; ids of ``layout.ignore_id`` become ``IGNORE_LABEL``.

    Raises:
        ValueError: For an id outside 0..K-1 (e.g. raw NYUv2 ids without a label map).
    """
    label = np.asarray(label, dtype=np.int64)
    bad = (label < 0) | (label >= layout.num_classes)
    if np.any(bad):
        raise ValueError(
            f'{source}: label {int(label[bad][0])} outside the {layout.name} layout '
            f'(0..{layout.num_classes - 1}); {layout.hint}')
    if layout.ignore_id is not None:
        label = np.where(label == layout.ignore_id, IGNORE_LABEL, label)
    return label
