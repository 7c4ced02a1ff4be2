"""RGB-D dataset readers: one file per source, a weighted mixture and the config factory.

Samples are dicts of numpy arrays (layout in ``training.data.datasets.base``); corrupt frames
are skipped, logged and counted in ``skipped``.
"""

from training.data.datasets.base import Frame
from training.data.datasets.base import FrameListDataset
from training.data.datasets.base import RGBDDataset
from training.data.datasets.coco import CocoLabelledDataset
from training.data.datasets.factory import build_dataset
from training.data.datasets.factory import build_source
from training.data.datasets.factory import DATASET_TYPES
from training.data.datasets.folder import FolderDataset
from training.data.datasets.labelled_folder import LabelledFolderDataset
from training.data.datasets.mixed import collate_common_keys
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

__all__ = [
    'CocoLabelledDataset', 'DATASET_TYPES', 'FolderDataset', 'Frame', 'FrameListDataset',
    'LabelledFolderDataset', 'MixedDataset', 'NYULabeledDataset', 'NYURawDataset',
    'Open3DSampleDataset', 'RGBDDataset',
    'RosbagDataset', 'ScanNetDataset', 'SevenScenesDataset', 'SUNRGBDDataset', 'TUMDataset',
    'YCBVideoDataset', 'build_dataset', 'build_source', 'collate_common_keys',
]
