"""In-plane rotation of frames and of pixel positions with them."""

import numpy as np
import pytest

from training.data.in_plane_rotation import (rotate_frame, rotate_points, rotation_angles,
                                             rotation_matrix)

SIZE = (40, 60)  # H, W


def test_angles_are_evenly_spaced_from_upright():
    assert rotation_angles(1) == (0.0,)
    assert rotation_angles(4) == (0.0, 90.0, 180.0, 270.0)
    with pytest.raises(ValueError, match='at least 1'):
        rotation_angles(0)


def test_a_quarter_turn_moves_a_point_right_of_centre_to_above_it():
    centre = np.array([(SIZE[1] - 1) / 2, (SIZE[0] - 1) / 2])
    moved = rotate_points([centre + [10.0, 0.0], centre], rotation_matrix(90.0, SIZE))
    np.testing.assert_allclose(moved, [centre + [0.0, -10.0], centre], atol=1e-9)


@pytest.mark.parametrize('angle', [90.0, 180.0, 45.0])
def test_the_frame_and_its_points_rotate_together(angle):
    rgb = np.zeros((*SIZE, 3), np.uint8)
    depth = np.zeros(SIZE, np.float32)
    rgb[14:17, 33:36] = 255  # a 3 x 3 marker centred on (x 34, y 15)
    depth[14:17, 33:36] = 2.5
    matrix = rotation_matrix(angle, SIZE)
    rgb_out, depth_out = rotate_frame(rgb, depth, matrix)
    assert rgb_out.shape == rgb.shape and depth_out.shape == depth.shape
    x, y = np.rint(rotate_points([[34.0, 15.0]], matrix)[0]).astype(int)
    assert rgb_out[y, x].min() > 200 and depth_out[y, x] == 2.5
    # Depth is never averaged: only 0 and the marker's value exist after the rotation.
    assert set(np.unique(depth_out).tolist()) == {0.0, 2.5}
