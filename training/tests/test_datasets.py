"""Dataset readers on real frames, with metres checked against PIL reads and hand formulas."""

import logging
import os

import cv2
import numpy as np
from PIL import Image
import pytest
import torch

from training.data.datasets import build_dataset
from training.data.datasets import collate_common_keys
from training.data.datasets import FolderDataset
from training.data.datasets import MixedDataset
from training.data.datasets import NYULabeledDataset
from training.data.datasets import NYURawDataset
from training.data.datasets import Open3DSampleDataset
from training.data.datasets import RosbagDataset
from training.data.datasets import ScanNetDataset
from training.data.datasets import SevenScenesDataset
from training.data.datasets import SUNRGBDDataset
from training.data.datasets import TUMDataset
from training.data.datasets import YCBVideoDataset


def _pil(path):
    return np.array(Image.open(path))


def _by_name(dataset, suffix):
    """Return the sample whose name ends with ``suffix``."""
    names = [frame.name for frame in dataset.frames]
    return dataset[[i for i, n in enumerate(names) if n.endswith(suffix)][0]]


def _link(source, target):
    os.makedirs(os.path.dirname(target), exist_ok=True)
    os.symlink(source, target)


def test_seven_scenes_metres_invalid_intrinsics_pose(shared_data):
    """7-Scenes: mm, 65535 and 0 invalid, K from camera-intrinsics.txt, 4x4 pose."""
    root = os.path.join(shared_data, '7scenes_redkitchen')
    dataset = SevenScenesDataset(root)
    assert len(dataset) == 400
    sample = _by_name(dataset, 'frame-000033.depth.png')
    raw = _pil(os.path.join(root, 'frame-000033.depth.png'))
    assert raw[240, 320] == 1329 and raw[391, 553] == 65535
    assert sample['depth'][240, 320] == pytest.approx(1.329)
    assert sample['depth'][391, 553] == 0.0 and not sample['valid'][391, 553]
    np.testing.assert_array_equal(sample['valid'], (raw > 0) & (raw < 65535))
    np.testing.assert_allclose(sample['K'], [[585, 0, 320], [0, 585, 240], [0, 0, 1]])
    assert sample['pose'].shape == (4, 4)
    np.testing.assert_allclose(sample['pose'][3], [0, 0, 0, 1])
    np.testing.assert_array_equal(sample['rgb'], _pil(os.path.join(root,
                                                                   'frame-000033.color.jpg')))


def test_ycbv_factor_labels_and_meta_intrinsics(shared_data):
    """YCB-Video: value / 10000, labels in 0..21, K from meta.mat equal to the README."""
    root = os.path.join(shared_data, 'ycbv')
    dataset = YCBVideoDataset(root)
    assert len(dataset) == 20 * len(os.listdir(os.path.join(root, 'frames')))  # 20 per video
    sample = _by_name(dataset, os.path.join('0000', '000001-depth.png'))
    raw = _pil(os.path.join(root, 'frames', '0000', '000001-depth.png'))
    assert raw[0, 0] == 8130 and sample['depth'][0, 0] == pytest.approx(0.813)
    np.testing.assert_allclose(sample['depth'], raw / 10000.0, rtol=1e-6)
    label = _pil(os.path.join(root, 'frames', '0000', '000001-label.png'))
    np.testing.assert_array_equal(sample['label'], label)
    assert set(np.unique(sample['label'])) == {0, 8, 14, 21}
    np.testing.assert_allclose(sample['K'], [[1066.778, 0, 312.987], [0, 1067.487, 241.311],
                                             [0, 0, 1]], atol=1e-3)
    other = _by_name(dataset, os.path.join('0001', '000020-depth.png'))
    assert 0 <= other['label'].min() and other['label'].max() <= 21


def test_single_frame_formats(shared_data):
    """TUM / 5000, SUN RGB-D bit rotation and NYU raw disparity on the real exported frames."""
    root = os.path.join(shared_data, 'open3d_rgbd', 'other_formats')
    tum = TUMDataset(root, rgb_glob='TUM_color.png', depth_glob='TUM_depth.png')[0]
    assert _pil(os.path.join(root, 'TUM_depth.png'))[240, 320] == 10920
    assert tum['depth'][240, 320] == pytest.approx(2.184) and 'K' not in tum
    sun = SUNRGBDDataset(root, rgb_glob='SUN_color.jpg', depth_glob='SUN_depth.png')[0]
    assert _pil(os.path.join(root, 'SUN_depth.png'))[300, 300] == 51976  # 0xcb08 -> 6497 mm
    assert sun['depth'][300, 300] == pytest.approx(6.497)
    nyu = NYURawDataset(root, rgb_glob='NYU_color.ppm', depth_glob='NYU_depth.pgm')[0]
    assert nyu['depth'][240, 320] == pytest.approx(351.3 / (1092.5 - 977))  # bytes d1 03
    assert nyu['K'][0, 0] == pytest.approx(582.62448167737955)
    assert nyu['rgb'].shape == (480, 640, 3) and nyu['valid'].mean() > 0.85


def test_open3d_sample_and_generic_folder(shared_data):
    """Open3D layout (column-major camera JSON) and the generic folder with a scale."""
    root = os.path.join(shared_data, 'open3d_rgbd')
    open3d = Open3DSampleDataset(root)
    assert len(open3d) == 5
    sample = open3d[0]
    assert sample['depth'][240, 320] == pytest.approx(2.195)  # PIL reads 2195 mm
    np.testing.assert_allclose(sample['K'], [[525, 0, 319.5], [0, 525, 239.5], [0, 0, 1]])
    folder = FolderDataset(root, 'color/*.jpg', 'depth/*.png', encoding='scale',
                           depth_params={'scale': 0.001},
                           intrinsics={'fx': 1, 'fy': 2, 'cx': 3, 'cy': 4})
    other = folder[0]
    np.testing.assert_array_equal(other['depth'], sample['depth'])
    np.testing.assert_allclose(other['K'], [[1, 0, 3], [0, 2, 4], [0, 0, 1]])
    with pytest.raises(ValueError, match='no folder frames'):
        FolderDataset(root, 'color/*.png', 'depth/*.png')


def test_tum_association_by_timestamp(shared_data, tmp_path):
    """rgb.txt/depth.txt pair each depth with the nearest colour within max_dt."""
    source = os.path.join(shared_data, 'open3d_rgbd')
    for i in range(3):
        _link(os.path.join(source, 'color', f'0000{i}.jpg'), str(tmp_path / f'rgb/{i}.jpg'))
        _link(os.path.join(source, 'depth', f'0000{i}.png'), str(tmp_path / f'depth/{i}.png'))
    (tmp_path / 'rgb.txt').write_text('# colour\n1.000 rgb/0.jpg\n1.033 rgb/1.jpg\n'
                                      '1.066 rgb/2.jpg\n')
    (tmp_path / 'depth.txt').write_text('# depth\n1.040 depth/1.png\n1.005 depth/0.png\n'
                                        '1.200 depth/2.png\n')
    dataset = TUMDataset(str(tmp_path), intrinsics=[525, 525, 319.5, 239.5])
    pairs = sorted((os.path.basename(f.rgb_path), os.path.basename(f.depth_path))
                   for f in dataset.frames)
    assert pairs == [('0.jpg', '0.png'), ('1.jpg', '1.png')]  # 1.200 has no partner
    assert dataset[0]['K'][0, 2] == 319.5
    with pytest.raises(ValueError, match='rgb_glob'):
        TUMDataset(str(tmp_path / 'rgb'))


def test_nyu_raw_dump_layout(shared_data, tmp_path):
    """Raw NYU dumps: depth pairs with the colour dump nearest in time."""
    source = os.path.join(shared_data, 'open3d_rgbd', 'other_formats')
    scene = tmp_path / 'bedroom_0001'
    _link(os.path.join(source, 'NYU_color.ppm'), str(scene / 'r-100.000000-1.ppm'))
    _link(os.path.join(source, 'NYU_color.ppm'), str(scene / 'r-100.040000-2.ppm'))
    _link(os.path.join(source, 'NYU_depth.pgm'), str(scene / 'd-100.030000-3.pgm'))
    dataset = NYURawDataset(str(tmp_path))
    assert len(dataset) == 1
    assert dataset.frames[0].rgb_path.endswith('r-100.040000-2.ppm')
    assert dataset[0]['depth'][240, 320] == pytest.approx(3.041558, rel=1e-6)


def test_sunrgbd_tree_and_scannet_export(shared_data, tmp_path):
    """Official SUN RGB-D frame folders and ScanNet exports (colour resized to depth)."""
    source = os.path.join(shared_data, 'open3d_rgbd', 'other_formats')
    frame = tmp_path / 'sun' / 'kv1' / 'NYUdata' / 'NYU0001'
    _link(os.path.join(source, 'SUN_color.jpg'), str(frame / 'image' / 'NYU0001.jpg'))
    _link(os.path.join(source, 'SUN_depth.png'), str(frame / 'depth' / 'NYU0001.png'))
    (frame / 'intrinsics.txt').write_text('518.857 0 284.582\n0 519.469 208.736\n0 0 1\n')
    sun = SUNRGBDDataset(str(tmp_path / 'sun'))[0]
    assert sun['depth'][300, 300] == pytest.approx(6.497)
    assert sun['K'][0, 2] == pytest.approx(284.582)

    scene = tmp_path / 'scannet' / 'scene0000_00'
    for folder in ('color', 'depth', 'intrinsic', 'pose'):
        (scene / folder).mkdir(parents=True)
    rgb = _pil(os.path.join(shared_data, '7scenes_redkitchen', 'frame-000000.color.jpg'))
    big = cv2.resize(rgb, (1296, 968), interpolation=cv2.INTER_LINEAR)
    cv2.imwrite(str(scene / 'color' / '0.jpg'), big[:, :, ::-1])
    _link(os.path.join(shared_data, '7scenes_redkitchen', 'frame-000000.depth.png'),
          str(scene / 'depth' / '0.png'))
    (scene / 'intrinsic' / 'intrinsic_depth.txt').write_text(
        '577.6 0 318.9 0\n0 578.7 242.7 0\n0 0 1 0\n0 0 0 1\n')
    (scene / 'pose' / '0.txt').write_text('1 0 0 1\n0 1 0 2\n0 0 1 3\n0 0 0 1\n')
    scannet = ScanNetDataset(str(tmp_path / 'scannet'))[0]
    assert scannet['rgb'].shape == (480, 640, 3)
    assert np.abs(scannet['rgb'].astype(int) - rgb).mean() < 8  # resized back, JPEG twice
    np.testing.assert_allclose(scannet['K'], [[577.6, 0, 318.9], [0, 578.7, 242.7], [0, 0, 1]])
    np.testing.assert_allclose(scannet['pose'][:3, 3], [1, 2, 3])


def test_truncated_frame_is_skipped_counted_and_logged(shared_data, tmp_path, caplog):
    """A truncated PNG among good frames: the next good frame comes back, the path is counted."""
    source = os.path.join(shared_data, 'open3d_rgbd')
    for i in range(3):
        _link(os.path.join(source, 'color', f'0000{i}.jpg'), str(tmp_path / f'color/{i}.jpg'))
        if i != 1:
            _link(os.path.join(source, 'depth', f'0000{i}.png'),
                  str(tmp_path / f'depth/{i}.png'))
    with open(os.path.join(source, 'depth', '00001.png'), 'rb') as stream:
        data = stream.read()
    bad = tmp_path / 'depth' / '1.png'
    bad.write_bytes(data[:len(data) // 2])
    dataset = Open3DSampleDataset(str(tmp_path))
    assert len(dataset) == 3
    with caplog.at_level(logging.WARNING):
        sample = dataset[1]
    assert sample['name'].endswith('2.png')
    assert dataset.skipped == {str(bad): 1} and dataset.skipped_total == 1
    assert str(bad) in caplog.text
    bad.write_bytes(b'')
    for good in ('0.png', '2.png'):
        (tmp_path / 'depth' / good).unlink()
        (tmp_path / 'depth' / good).write_bytes(b'not a png')
    with pytest.raises(RuntimeError, match='consecutive'):
        dataset[0]
    assert dataset.skipped_total == 4


def test_mixed_dataset_weights_and_build_dataset(shared_data):
    """build_dataset from a config; the sampler draws sources by weight, not by size."""
    cfg = {'data': {'sources': [
        {'type': 'ycbv', 'root': 'ycbv', 'weight': 1.0, 'select': [0, 40]},
        {'type': 'open3d', 'root': 'open3d_rgbd', 'weight': 3.0},
        {'type': 'tum', 'root': 'open3d_rgbd/other_formats', 'weight': 0.0,
         'rgb_glob': 'TUM_color.png', 'depth_glob': 'TUM_depth.png'},
    ]}}
    mixed = build_dataset(cfg, base_dir=shared_data)
    assert isinstance(mixed, MixedDataset) and len(mixed) == 40 + 5 + 1
    assert mixed.names == ['ycbv', 'open3d', 'tum']
    assert mixed.locate(40) == (1, 0) and mixed[45]['source'] == 'tum'
    weights = mixed.sample_weights()
    assert float(weights.sum()) == pytest.approx(1.0)
    assert float(weights[0]) == pytest.approx(0.25 / 40)
    draws = torch.tensor(list(mixed.sampler(4000, torch.Generator().manual_seed(0))))
    open3d_share = float(((draws >= 40) & (draws < 45)).float().mean())
    assert abs(open3d_share - 0.75) < 0.03 and not (draws == 45).any()
    batch = collate_common_keys([mixed[0], mixed[41]])
    assert set(batch) == {'rgb', 'depth', 'valid', 'name', 'source', 'K'}
    with pytest.raises(ValueError, match="'kinect'"):
        build_dataset({'sources': [{'type': 'kinect', 'root': '.'}]})
    with pytest.raises(ValueError, match='7scenes'):
        build_dataset({'sources': [{'type': '7scenes', 'root': shared_data, 'depth': 1}]})


def _write_bag(path, frames, storage, lonely_depth):
    """Write colour (bgr8) and depth (16UC1 / 32FC1) messages plus a CameraInfo to a bag.

    ``lonely_depth`` is one more 16UC1 depth image, stamped 5 s, without a colour partner.
    """
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import get_typestore, Stores
    store = get_typestore(Stores.ROS2_HUMBLE)
    types = store.types
    image_type = 'sensor_msgs/msg/Image'
    info_type = 'sensor_msgs/msg/CameraInfo'

    def header(stamp_ns):
        return types['std_msgs/msg/Header'](
            stamp=types['builtin_interfaces/msg/Time'](sec=stamp_ns // 10 ** 9,
                                                       nanosec=stamp_ns % 10 ** 9),
            frame_id='camera')

    def image(stamp_ns, array, encoding):
        data = np.frombuffer(np.ascontiguousarray(array).tobytes(), np.uint8)
        return types[image_type](header=header(stamp_ns), height=array.shape[0],
                                 width=array.shape[1], encoding=encoding, is_bigendian=0,
                                 step=data.size // array.shape[0], data=data)

    plugin = StoragePlugin.MCAP if storage == 'mcap' else StoragePlugin.SQLITE3
    with Writer(path, version=9, storage_plugin=plugin) as writer:
        rgb_conn = writer.add_connection('/rgb', image_type, typestore=store)
        depth_conn = writer.add_connection('/depth', image_type, typestore=store)
        info_conn = writer.add_connection('/info', info_type, typestore=store)
        roi = types['sensor_msgs/msg/RegionOfInterest'](x_offset=0, y_offset=0, height=0,
                                                        width=0, do_rectify=False)
        info = types[info_type](
            header=header(0), height=60, width=80, distortion_model='plumb_bob',
            d=np.zeros(5), k=np.array([70.0, 0, 40, 0, 71.0, 30, 0, 0, 1]),
            r=np.eye(3).ravel(), p=np.zeros(12), binning_x=0, binning_y=0, roi=roi)
        writer.write(info_conn, 1, store.serialize_cdr(info, info_type))
        for stamp_ns, rgb, depth_mm, encoding in frames:
            depth = depth_mm if encoding == '16UC1' else depth_mm.astype(np.float32) / 1000
            writer.write(rgb_conn, stamp_ns + 10,
                         store.serialize_cdr(image(stamp_ns, rgb[:, :, ::-1], 'bgr8'),
                                             image_type))
            # depth stamped 5 ms later and received later still: pairing uses the stamps
            writer.write(depth_conn, stamp_ns + 20, store.serialize_cdr(
                image(stamp_ns + 5_000_000, depth, encoding), image_type))
        writer.write(depth_conn, 5 * 10 ** 9, store.serialize_cdr(
            image(5 * 10 ** 9, lonely_depth, '16UC1'), image_type))


@pytest.mark.parametrize('storage', ['mcap', 'sqlite3'])
def test_rosbag_pairs_by_stamp_and_decodes(shared_data, tmp_path, storage):
    """A bag written with rosbags from real 7-Scenes frames reads back paired and in metres."""
    root = os.path.join(shared_data, '7scenes_redkitchen')
    frames = []
    for i, encoding in enumerate(['16UC1', '32FC1', '16UC1']):
        rgb = cv2.resize(_pil(os.path.join(root, f'frame-00000{i}.color.jpg')), (80, 60),
                         interpolation=cv2.INTER_AREA)
        raw = _pil(os.path.join(root, f'frame-00000{i}.depth.png'))[::8, ::8]  # (60, 80)
        frames.append((10 ** 9 + i * 100_000_000, rgb, np.ascontiguousarray(raw), encoding))
    path = tmp_path / 'bag'
    _write_bag(path, frames, storage, lonely_depth=frames[0][2])
    dataset = RosbagDataset(str(path), '/rgb', '/depth', slop=0.01, camera_info_topic='/info')
    assert len(dataset) == 3
    for index, (_, rgb, raw, _) in enumerate(frames):
        sample = dataset[index]
        np.testing.assert_array_equal(sample['rgb'], rgb)
        np.testing.assert_allclose(sample['depth'], raw / 1000.0, rtol=1e-6)
        assert not sample['valid'][raw == 0].any()
        np.testing.assert_allclose(sample['K'], [[70, 0, 40], [0, 71, 30], [0, 0, 1]])
    with pytest.raises(ValueError, match='no rosbag frames'):  # stamps are 5 ms apart
        RosbagDataset(str(path), '/rgb', '/depth', slop=0.004)
    with pytest.raises(ValueError, match='/missing'):
        RosbagDataset(str(path), '/rgb', '/missing')


def test_nyu_labeled_official_layout(tmp_path):
    """The labelled .mat layout (HDF5, MATLAB-transposed arrays); skipped without h5py."""
    h5py = pytest.importorskip('h5py', reason='h5py is not installed: the NYU labelled '
                                              'reader cannot be exercised')
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (2, 4, 3, 3), dtype=np.uint8)  # (N, H, W, 3)
    depths = rng.uniform(0.5, 9.0, (2, 4, 3)).astype(np.float32)
    depths[0, 1, 2] = 0.0
    labels = rng.integers(0, 895, (2, 4, 3)).astype(np.uint16)
    path = str(tmp_path / 'nyu_depth_v2_labeled.mat')
    with h5py.File(path, 'w') as file:
        file['images'] = images.transpose(0, 3, 2, 1)  # (N, 3, W, H) as MATLAB writes it
        file['rawDepths'] = depths.transpose(0, 2, 1)
        file['depths'] = depths.transpose(0, 2, 1)
        file['labels'] = labels.transpose(0, 2, 1)
    dataset = NYULabeledDataset(path)
    assert len(dataset) == 2
    sample = dataset[0]
    np.testing.assert_array_equal(sample['rgb'], images[0])
    np.testing.assert_array_equal(sample['depth'], depths[0])
    np.testing.assert_array_equal(sample['label'], labels[0])
    assert not sample['valid'][1, 2] and sample['K'][0, 0] == pytest.approx(518.85790117450188)
