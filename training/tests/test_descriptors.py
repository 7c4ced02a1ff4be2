"""Correspondences from depth + pose, TUM pose interpolation, the descriptor head and its loss."""

import math
import os

import numpy as np
import pytest
import torch

from training.data.correspondences import (correspondences, grid_positions, reproject,
                                           split_distance, tum_pose_at)
from training.models.descriptor_head import (DescriptorHead, info_nce_loss, match_accuracy,
                                             pixels_to_grid, sample_descriptors)

INTRINSICS = (50.0, 50.0, 29.5, 19.5)  # fx, fy, cx, cy of a 40 x 60 image


def translation(x: float) -> np.ndarray:
    """Camera-to-world pose moved by ``x`` metres along the world x axis."""
    pose = np.eye(4)
    pose[0, 3] = x
    return pose


def test_sideways_move_shifts_pixels_by_f_times_baseline_over_depth():
    """A sideways camera move shifts pixels by f * baseline / depth."""
    # Flat wall 2 m away; B is 0.2 m to the right: u_b = u - 50 * 0.2 / 2 = u - 5, v unchanged.
    depth = np.full((40, 60), 2.0, np.float32)
    xy = np.array([[10.0, 5.0], [30.0, 20.0], [59.0, 39.0], [2.0, 7.0]])
    found = correspondences(xy, depth, depth, INTRINSICS, INTRINSICS, np.eye(4),
                            translation(0.2))
    np.testing.assert_allclose(found.xy_b, [[5.0, 5.0], [25.0, 20.0], [54.0, 39.0],
                                            [-3.0, 7.0]], atol=1e-9)
    np.testing.assert_allclose(found.depth_b_m, 2.0)
    # The last point leaves the image on the left.
    assert found.visible.tolist() == [True, True, True, False]


def test_occluded_and_unmeasured_points_are_not_visible():
    """Points hidden in B or without depth in B are not visible correspondences."""
    depth_a = np.full((40, 60), 2.0, np.float32)
    depth_b = depth_a.copy()
    depth_b[:, 20:30] = 1.0  # an occluder in front of the wall in B
    depth_b[:, 40:45] = 0.0  # no measurement
    depth_a[0, 0] = 0.0      # A has no depth here
    xy = np.array([[30.0, 10.0], [50.0, 10.0], [0.0, 0.0], [15.0, 10.0]])
    found = correspondences(xy, depth_a, depth_b, INTRINSICS, INTRINSICS, np.eye(4),
                            translation(0.2))
    # 30 -> 25 (behind the occluder), 50 -> 45 (measured: columns 40..44 are empty).
    assert found.visible.tolist() == [False, True, False, True]
    xy = np.array([[48.0, 10.0]])  # -> 43: no measurement in B
    assert not correspondences(xy, depth_a, depth_b, INTRINSICS, INTRINSICS, np.eye(4),
                               translation(0.2)).visible[0]


def test_yaw_moves_the_principal_point_by_f_tan_angle():
    """A yaw of the camera moves the principal point by f * tan(angle)."""
    # B turned by atan(0.1) about its y axis: A's optical axis lands at cx - fx * 0.1.
    angle = math.atan(0.1)
    pose_b = np.eye(4)
    pose_b[:3, :3] = [[math.cos(angle), 0.0, math.sin(angle)], [0.0, 1.0, 0.0],
                      [-math.sin(angle), 0.0, math.cos(angle)]]
    xy_b, z_b = reproject(np.array([[29.5, 19.5]]), np.array([3.0]), INTRINSICS, INTRINSICS,
                          np.eye(4), pose_b)
    np.testing.assert_allclose(xy_b, [[24.5, 19.5]], atol=1e-9)
    np.testing.assert_allclose(z_b, [3.0 * math.cos(angle)], atol=1e-9)


def test_grid_positions_are_cell_centres():
    """Grid positions are the camera pixels of the cell centres."""
    xy = grid_positions((2, 3), (4, 6))
    np.testing.assert_allclose(xy, [[0.5, 0.5], [2.5, 0.5], [4.5, 0.5],
                                    [0.5, 2.5], [2.5, 2.5], [4.5, 2.5]])
    grid = pixels_to_grid(torch.from_numpy(xy), (4, 6), (2, 3)).numpy()
    np.testing.assert_allclose(grid[:3], [[0, 0], [1, 0], [2, 0]], atol=1e-9)


def test_tum_pose_interpolates_translation_and_rotation():
    """TUM poses interpolate translation and rotation between stamps."""
    half = math.sqrt(0.5)
    trajectory = np.array([[10.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0],
                           [10.02, 0.2, 0.0, 0.0, 0.0, 0.0, half, half]])  # 90 deg about z
    pose = tum_pose_at(trajectory, 10.01)
    np.testing.assert_allclose(pose[:3, 3], [0.1, 0.0, 0.0], atol=1e-9)
    np.testing.assert_allclose(pose[:3, :3], [[half, -half, 0.0], [half, half, 0.0],
                                              [0.0, 0.0, 1.0]], atol=1e-9)
    with pytest.raises(ValueError):
        tum_pose_at(trajectory, 11.0)


def test_split_distance_of_the_cpu_preset_ranges():
    """The CPU preset's test ranges lie 151 (7-Scenes) and 51 (TUM) frames from training."""
    train = [{'type': '7scenes', 'root': 's', 'select': [0, 200]},
             {'type': 'tum', 'root': 't', 'select': [0, 100]}]
    test = [{'type': '7scenes', 'root': 's', 'select': [350, 400]},
            {'type': 'tum', 'root': 't', 'select': [150, None]}]
    assert split_distance(train, test, {'s': 400, 't': 232}) == {'s': 151, 't': 51}


def test_head_gives_unit_descriptors_at_four_times_the_patch_grid():
    """The head gives unit descriptors on a grid 4x finer than the patches."""
    torch.manual_seed(0)
    head = DescriptorHead(16, dim=24, channels=8, stem_channels=4).eval()
    maps = [torch.randn(2, 16, 3, 4) for _ in range(4)]
    out = head(maps, torch.rand(2, 3, 42, 56))
    assert out.shape == (2, 24, 12, 16)
    torch.testing.assert_close(out.norm(dim=1), torch.ones(2, 12, 16))
    tokens_only = DescriptorHead(16, dim=24, channels=8, use_rgb=False).eval()
    assert tokens_only(maps, torch.rand(2, 3, 42, 56)).shape == (2, 24, 12, 16)


def test_info_nce_prefers_the_true_cell_and_trains():
    """The InfoNCE loss is lower for the true cells and gives finite gradients."""
    torch.manual_seed(0)
    descriptors_b = torch.nn.functional.normalize(torch.randn(8, 5, 6), dim=0)
    grid = torch.tensor([[1.0, 2.0], [4.0, 0.0], [2.0, 3.0]])  # (x, y) cell positions
    exact = sample_descriptors(descriptors_b, grid)
    torch.testing.assert_close(exact[0], descriptors_b[:, 2, 1])
    good = info_nce_loss(exact, descriptors_b, grid, temperature=0.05)
    random = info_nce_loss(torch.nn.functional.normalize(torch.randn(3, 8), dim=1),
                           descriptors_b, grid, temperature=0.05)
    assert good < random
    assert match_accuracy(exact, descriptors_b, grid) == 1.0
    anchors = torch.randn(3, 8, requires_grad=True)
    info_nce_loss(torch.nn.functional.normalize(anchors, dim=1), descriptors_b, grid).backward()
    assert torch.isfinite(anchors.grad).all() and anchors.grad.abs().sum() > 0
    with pytest.raises(ValueError):
        info_nce_loss(exact[:, :4], descriptors_b, grid)


@pytest.mark.slow
def test_train_descriptors_writes_atomic_checkpoints_and_resumes(shared_data, tmp_path):
    """Three steps, then a resume to five, on real posed frames with a tiny frozen model."""
    from training.checkpoint.descriptor import load_descriptor_head
    from training.checkpoint.files import load_checkpoint
    from training.checkpoint.weights import write_weights_checkpoint
    from training.models import build_model
    from training.train_descriptors import main

    torch.manual_seed(4)
    model = build_model({'img_size': [42, 56], 'timm_kwargs': {
        'depth': 2, 'embed_dim': 64, 'num_heads': 2}})
    checkpoint = str(tmp_path / 'pretrain.pt')
    torch.save({'format': 'test', 'step': 9, 'model': model.state_dict(),
                'model_config': model.config}, checkpoint)
    args = ['--checkpoint', checkpoint, '--config', 'training/configs/cpu.yaml',
            '--data', shared_data, '--out-dir', str(tmp_path / 'run'), '--val-every', '2',
            '--pairs', '2', '--points', '32', '--dim', '16', '--channels', '8',
            '--stem-channels', '4', '--rotations', '2',
            'model.timm_kwargs={depth: 2, embed_dim: 64, num_heads: 2}',
            'model.img_size=[42,56]',
            'data.sources=[{type: 7scenes, root: 7scenes_redkitchen, select: [0, 12]}, '
            '{type: tum, root: tum_fr1_rpy, select: [0, 8]}, {type: open3d, root: open3d_rgbd}]',
            'val.sources=[{type: 7scenes, root: 7scenes_redkitchen, select: [250, 262]}]']
    assert main(args + ['--max-steps', '3']) == 0
    assert main(args + ['--max-steps', '5', '--resume']) == 0
    folder = tmp_path / 'run' / 'checkpoints'
    assert sorted(os.listdir(folder)) == ['best.pt', 'step_00000004.pt', 'step_00000005.pt']
    state = load_checkpoint(str(folder / 'step_00000005.pt'))
    assert [row['step'] for row in state['val_history']] == [0, 2, 3, 4, 5]
    assert [spec['type'] for spec in state['training_sources']] == ['7scenes', 'tum']
    assert state['grid_size'] == [12, 16] and state['rotations'] == [0.0, 180.0]
    model.load_state_dict(torch.load(checkpoint, weights_only=True)['model'])
    head, _ = load_descriptor_head(str(folder / 'best.pt'), model.eval())
    assert head.dim == 16 and head.config['channels'] == 8 and head.config['stem_channels'] == 4
    assert head.stem[0][0].out_channels == 4 and head.project.in_channels == 16
    # The shippable copy: no optimiser, the same head and sources.
    slim = str(tmp_path / 'head.pt')
    assert write_weights_checkpoint(str(folder / 'best.pt'), slim) < os.path.getsize(
        folder / 'best.pt')
    copy, copy_state = load_descriptor_head(slim, model)
    assert 'optimizer' in load_checkpoint(str(folder / 'best.pt'))
    assert 'optimizer' not in copy_state
    assert copy_state['training_sources'] == state['training_sources']
    for name, value in head.state_dict().items():
        assert torch.equal(copy.state_dict()[name], value), name


def test_a_pair_shown_rotated_has_its_targets_rotated_with_it():
    """B shown half a turn round: every target mirrors through the image centre."""
    from training.data.correspondences import PosedFrame
    from training.train_descriptors import EncodedSequence, pair_target

    depth = np.full((40, 60), 2.0, np.float32)
    frames = [PosedFrame(f'f{i}', i, np.zeros((40, 60, 3), np.uint8), depth, INTRINSICS,
                         translation(0.1 * i)) for i in range(2)]
    sequence = EncodedSequence('wall', '7scenes', frames, (0.0, 180.0), torch.zeros(0),
                               torch.zeros(0))
    upright = pair_target([sequence], 0, 0, 1, (8, 12))
    rotated = pair_target([sequence], 0, 0, 1, (8, 12), rotation_b=1)
    assert rotated.rotation_b == 1 and upright.rotation_b == 0
    np.testing.assert_array_equal(rotated.cells, upright.cells)
    # In grid coordinates (cell centres at integers) the mirror of x is 11 - x, of y 7 - y.
    np.testing.assert_allclose(rotated.grid_xy_b, [11.0, 7.0] - upright.grid_xy_b, atol=1e-6)
