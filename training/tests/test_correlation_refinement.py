"""Correlation refinement: sub-pixel shifts found, flat or unlike patches left alone."""

import cv2
import numpy as np
import pytest

from training.eval.correlation_refinement import (correlated_matches, refine_by_correlation,
                                                  roll_similarity)
from training.eval.frames import seven_scenes_frame


def textured(seed: int = 0, size: tuple = (120, 160)) -> np.ndarray:
    """Return a smooth random texture (float32 grey levels 0-255)."""
    noise = np.random.default_rng(seed).random((size[0] // 4, size[1] // 4)).astype(np.float32)
    return cv2.resize(noise, size[::-1], interpolation=cv2.INTER_CUBIC) * 255


def shifted(image: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """Return ``image`` moved by (dx, dy) pixels: out(x + dx, y + dy) = image(x, y)."""
    move = np.float32([[1, 0, dx], [0, 1, dy]])
    return cv2.warpAffine(image, move, image.shape[::-1], flags=cv2.INTER_CUBIC)


def test_a_sub_pixel_shift_is_found_from_a_guess_pixels_away():
    gray_a = textured()
    gray_b = shifted(gray_a, 2.3, -1.6)
    xy_a = np.array([[60.2, 50.4], [90.0, 70.0], [40.0, 80.0]])
    guess = xy_a + [4.0, 2.0]  # the descriptors' placement, pixels off
    pixels_a, xy_b, accepted = refine_by_correlation(gray_a, gray_b, xy_a, guess)
    assert accepted.all()
    assert np.array_equal(pixels_a, np.round(xy_a))
    error = xy_b - (pixels_a + [2.3, -1.6])
    assert np.abs(error).max() < 0.25, error  # the parabola's bias, largest near half pixels
    assert np.abs(guess - (pixels_a + [2.3, -1.6])).min() > 1.0  # it had to move


def test_flat_unlike_and_border_patches_are_not_placed():
    gray_a = textured()
    gray_a[:, :40] = 128.0  # a flat wall on the left
    gray_b = textured(seed=1)  # another scene: nothing correlates well
    xy = np.array([[20.0, 60.0], [100.0, 60.0], [3.0, 3.0]])
    _, xy_b, accepted = refine_by_correlation(gray_a, gray_b, xy, xy)
    assert not accepted.any() and np.array_equal(xy_b, xy)
    _, _, accepted = refine_by_correlation(gray_a, gray_a, xy, xy)
    assert accepted.tolist() == [False, True, False]  # flat, placed, too near the border


def test_bad_inputs_are_refused():
    gray = textured()
    with pytest.raises(ValueError, match='refine_by_correlation'):
        refine_by_correlation(gray, gray[:, :100], np.zeros((1, 2)), np.zeros((1, 2)))
    with pytest.raises(ValueError, match='refine_by_correlation'):
        refine_by_correlation(gray, gray.astype(np.float64), np.zeros((1, 2)), np.zeros((1, 2)))
    with pytest.raises(ValueError, match='refine_by_correlation'):
        refine_by_correlation(gray, gray, np.zeros((2, 2)), np.zeros((1, 2)))


def test_correlated_matches_keeps_the_placed_ones_or_all_when_too_few():
    rgb_a = np.repeat(textured()[..., None], 3, axis=2).clip(0, 255).astype(np.uint8)
    rgb_b = np.repeat(shifted(textured(), 1.5, 0.5)[..., None], 3, axis=2).clip(
        0, 255).astype(np.uint8)
    rows, cols = np.mgrid[20:100:10, 20:140:10]
    xy_a = np.stack([cols.ravel(), rows.ravel()], axis=1).astype(np.float64)  # 96 points
    xy_a[:5] = [1.0, 1.0]  # five at the border: not placed
    kept_a, kept_b, placed = correlated_matches(rgb_a, rgb_b, xy_a, xy_a + 1.0)
    assert placed and len(kept_a) == len(kept_b) == 91
    error = np.abs(kept_b - kept_a - [1.5, 0.5])  # half a pixel in y: the parabola's worst
    assert np.median(error) < 0.15 and error.max() < 0.5, (np.median(error), error.max())
    same_a, same_b, placed = correlated_matches(rgb_a, rgb_b, xy_a, xy_a, min_matches=92)
    assert not placed and same_a is xy_a and same_b is xy_a


def test_a_real_pair_places_most_textured_points(shared_data):
    """On a real 7-Scenes pair at gap 5, the points SIFT finds get placed near SIFT's match."""
    frame_a, frame_b = (seven_scenes_frame(shared_data, index) for index in (100, 105))
    grays = [cv2.cvtColor(f.rgb, cv2.COLOR_RGB2GRAY) for f in (frame_a, frame_b)]
    sift = cv2.SIFT_create(500)
    (points_a, desc_a), (points_b, desc_b) = (sift.detectAndCompute(g, None) for g in grays)
    matches = cv2.BFMatcher(cv2.NORM_L2, crossCheck=True).match(desc_a, desc_b)
    xy_a = np.array([points_a[m.queryIdx].pt for m in matches])
    xy_b = np.array([points_b[m.trainIdx].pt for m in matches])
    guess = xy_b + np.random.default_rng(0).uniform(-4, 4, xy_b.shape)
    pixels_a, refined, accepted = refine_by_correlation(
        *(g.astype(np.float32) for g in grays), xy_a, guess)
    # SIFT's own positions carry about a pixel of error; the guesses up to 5.7.
    moved = np.linalg.norm(refined - (xy_b + pixels_a - xy_a), axis=1)[accepted]
    assert accepted.mean() > 0.5 and np.median(moved) < 1.0, (accepted.mean(), np.median(moved))


def test_a_rolled_pair_is_placed_after_turning_b_back():
    # B: A's scene with the camera rolled by 40 degrees about the image centre.
    gray_a = textured(size=(240, 320))
    turn = cv2.getRotationMatrix2D((160.0, 120.0), 40.0, 1.0)  # p_b = turn @ (p_a, 1)
    gray_b = cv2.warpAffine(gray_a, turn, (320, 240), flags=cv2.INTER_CUBIC)
    rgb_a, rgb_b = (np.repeat(g[..., None], 3, axis=2).clip(0, 255).astype(np.uint8)
                    for g in (gray_a, gray_b))
    rows, cols = np.mgrid[90:160:10, 120:210:10]
    xy_a = np.stack([cols.ravel(), rows.ravel()], axis=1).astype(np.float64)  # 63 points
    truth_b = xy_a @ turn[:, :2].T + turn[:, 2]
    guess = truth_b + np.random.default_rng(0).uniform(-3, 3, truth_b.shape)
    similarity = roll_similarity(xy_a, guess)
    assert similarity is not None and abs(np.degrees(np.arctan2(
        similarity[1, 0], similarity[0, 0])) + 40.0) < 2.0  # image rows point down
    kept_a, kept_b, placed = correlated_matches(rgb_a, rgb_b, xy_a, guess)
    assert placed and len(kept_a) > 50
    error = np.linalg.norm(kept_b - (kept_a @ turn[:, :2].T + turn[:, 2]), axis=1)
    assert np.median(error) < 0.3, np.median(error)
    # Unturned, the same patches do not correlate: few or none are placed.
    assert refine_by_correlation(gray_a, gray_b, xy_a, guess)[2].sum() < 20
    assert roll_similarity(xy_a, xy_a + 2.0) is None  # no roll: no turn
