"""Rolled frames: the turned images and the turned pose see the same world points."""

import numpy as np
import pytest

from training.eval.frames import RGBDFrame
from training.eval.pose_estimation import backproject, Intrinsics
from training.eval.rolled_frames import rolled_frame, rolled_sequences


def frame() -> RGBDFrame:
    """Return a 120 x 160 frame with a depth ramp, its own pose and square pixels."""
    rng = np.random.default_rng(0)
    depth = np.linspace(1.0, 3.0, 120 * 160, dtype=np.float32).reshape(120, 160)
    pose = np.eye(4)
    pose[:3, 3] = [0.1, -0.2, 0.3]
    angle = np.radians(20.0)
    pose[:3, :3] = [[np.cos(angle), 0, np.sin(angle)], [0, 1, 0],
                    [-np.sin(angle), 0, np.cos(angle)]]
    return RGBDFrame('test/0', 'test', rng.integers(0, 255, (120, 160, 3), dtype=np.uint8),
                     depth, Intrinsics(100.0, 100.0, 79.5, 59.5), pose)


def world_point(f: RGBDFrame, xy) -> np.ndarray:
    """Return the world point seen at pixel ``xy`` (integer) of ``f``."""
    x, y = xy
    point = backproject(np.array([xy], np.float64), np.array([f.depth_m[y, x]]), f.intrinsics)
    return (f.cam_to_world @ np.append(point[0], 1.0))[:3]


def test_a_rolled_frame_sees_the_same_world_points():
    original = frame()
    turned = rolled_frame(original, 90.0)  # a quarter turn maps pixel centres onto pixels
    for x, y in ((79, 59), (100, 40), (60, 90)):
        # OpenCV's positive angle turns the image counter-clockwise as displayed.
        xy_turned = (79.5 + (y - 59.5), 59.5 - (x - 79.5))
        xt, yt = int(round(xy_turned[0])), int(round(xy_turned[1]))
        assert turned.depth_m[yt, xt] == original.depth_m[y, x]
        assert np.array_equal(turned.rgb[yt, xt], original.rgb[y, x])
        np.testing.assert_allclose(world_point(turned, (xt, yt)),
                                   world_point(original, (x, y)), atol=1e-9)
    assert turned.depth_m[0, 0] == 0.0  # turned in from outside: no depth


def test_rolled_sequences_are_repeatable_and_refuse_unsuitable_frames():
    sequences = {'a': [frame(), frame()]}
    first, again = rolled_sequences(sequences, 3), rolled_sequences(sequences, 3)
    assert all(np.array_equal(x.cam_to_world, y.cam_to_world)
               for x, y in zip(first['a'], again['a']))
    assert not np.allclose(first['a'][0].cam_to_world, first['a'][1].cam_to_world)
    with pytest.raises(ValueError, match='fx = fy'):
        rolled_frame(RGBDFrame('t', 't', frame().rgb, frame().depth_m,
                               Intrinsics(100.0, 90.0, 79.5, 59.5), np.eye(4)), 10.0)
