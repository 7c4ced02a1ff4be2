"""Output messages of the node that are not plain images: camera_info copies, point clouds."""

import numpy as np
from sensor_msgs.msg import CameraInfo, PointCloud2, PointField
from std_msgs.msg import Header

XYZRGB_FIELDS = (('x', 0), ('y', 4), ('z', 8), ('rgb', 12))


def rectified_camera_info(intrinsics: np.ndarray, size: tuple, header: Header) -> CameraInfo:
    """Build a distortion-free camera_info: K, R = identity and P = [K | 0].

    Args:
        intrinsics: (3, 3) or 9-value K.
        size: (height, width) of the image grid.
        header: Header of the message (copied).

    Returns:
        The message.
    """
    info = CameraInfo()
    info.header = Header(stamp=header.stamp, frame_id=header.frame_id)
    info.height, info.width = map(int, size)
    camera = np.asarray(intrinsics, dtype=np.float64).reshape(3, 3)
    info.distortion_model = 'plumb_bob'
    info.d = [0.0] * 5
    info.k = [float(v) for v in camera.reshape(9)]
    info.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    projection = np.zeros((3, 4))
    projection[:, :3] = camera
    info.p = [float(v) for v in projection.reshape(12)]
    return info


def camera_info_with(info: CameraInfo, header: Header, intrinsics: np.ndarray = None,
                     size: tuple = None) -> CameraInfo:
    """Copy a camera_info with a new header, and optionally a new K (and P) and size.

    Args:
        info: The input camera's camera_info.
        header: Header of the output (the input image's stamp and frame id).
        intrinsics: (3, 3) K of the output grid; None keeps the input's K, P and distortion.
        size: (height, width) of the output grid; None keeps the input's.

    Returns:
        The new message. With a new K the output is rectified (no distortion) and P = [K | 0].
    """
    size = (info.height, info.width) if size is None else size
    if intrinsics is not None:
        return rectified_camera_info(intrinsics, size, header)
    out = CameraInfo()
    out.header = Header(stamp=header.stamp, frame_id=header.frame_id)
    out.height, out.width = map(int, size)
    out.distortion_model, out.d = info.distortion_model, list(info.d)
    out.k, out.r, out.p = info.k, info.r, info.p
    out.binning_x, out.binning_y, out.roi = info.binning_x, info.binning_y, info.roi
    return out


def point_cloud_xyzrgb(points: np.ndarray, colours: np.ndarray, header: Header) -> PointCloud2:
    """Build an unorganised ``PointCloud2`` with fields x, y, z (float32) and rgb (packed).

    Args:
        points: (N, 3) float coordinates in metres, in the camera frame.
        colours: (N, 3) uint8 RGB.
        header: Stamp and frame id.

    Returns:
        The cloud (16 bytes per point, little-endian, dense).

    Raises:
        ValueError: When the arrays do not have matching (N, 3) shapes.
    """
    points, colours = np.asarray(points), np.asarray(colours)
    if points.ndim != 2 or points.shape[1] != 3 or colours.shape != points.shape:
        raise ValueError(f'need (N, 3) points and colours, got {points.shape} and '
                         f'{colours.shape}')
    record = np.dtype([('x', '<f4'), ('y', '<f4'), ('z', '<f4'), ('rgb', '<u4')])
    cloud = np.empty(len(points), dtype=record)  # (N,)
    for axis, name in enumerate('xyz'):
        cloud[name] = points[:, axis]
    colours = colours.astype(np.uint32)
    cloud['rgb'] = (colours[:, 0] << 16) | (colours[:, 1] << 8) | colours[:, 2]
    msg = PointCloud2()
    msg.header = Header(stamp=header.stamp, frame_id=header.frame_id)
    msg.height, msg.width = 1, len(points)
    # rviz and PCL read the packed colour as a float32 field named rgb.
    msg.fields = [PointField(name=name, offset=offset, datatype=PointField.FLOAT32, count=1)
                  for name, offset in XYZRGB_FIELDS]
    msg.is_bigendian = False
    msg.point_step = record.itemsize
    msg.row_step = record.itemsize * len(points)
    msg.is_dense = True
    msg.data = cloud.tobytes()
    return msg
