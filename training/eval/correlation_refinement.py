"""Dense matches placed to a fraction of a camera pixel by normalised cross-correlation.

A descriptor map at a quarter of a 126 x 168 model input has a cell of 13 VGA pixels; even
between cells (``refine_dense_matches``) a match is placed to a few pixels. For relative pose
over a few centimetres that error dominates. Here each match takes A's image patch around its
point (at A's nearest pixel) and finds it in B's image, at camera resolution, near the
descriptor's guess: the peak of the normalised cross-correlation (OpenCV ``TM_CCOEFF_NORMED``)
with a parabola through the peak and its neighbours for the sub-pixel part (biased by up to a
few tenths of a pixel for shifts near half a pixel, as such fits are). Matches whose patch
is flat or whose peak is low are not placed, and :func:`correlated_matches` keeps the placed
ones only: they are the well-textured, well-localised points a keypoint detector would keep.
An unrotated patch stops correlating when the camera rolls about its optical axis: when the
similarity transform fitted to the matches (RANSAC) rolls more than :data:`MAX_UNROTATED_ROLL_DEG`,
B's image is first warped back by it, the matches are placed there and mapped back to B.
"""

import cv2
import numpy as np

PATCH_RADIUS = 7  # 15 x 15 pixel patches
SEARCH_RADIUS = 6  # about half a 13-pixel cell around the guess
MIN_SCORE = 0.8
MIN_CONTRAST = 2.0  # grey-level standard deviation of a patch worth correlating
MIN_MATCHES = 20  # fewer placed matches: keep the descriptor's matches as they are
# Beyond this roll the corners of a 15 x 15 patch move by more than a pixel (7 px x 0.17 rad).
MAX_UNROTATED_ROLL_DEG = 10.0
ROLL_FIT_THRESHOLD_PX = 13.0  # a descriptor cell of a VGA image: what a match may be off by


def _parabola_peak(minus: float, centre: float, plus: float) -> float:
    """Offset in (-0.5, 0.5) of the top of a parabola through three samples (0 if flat)."""
    curvature = minus - 2.0 * centre + plus
    return 0.5 * (minus - plus) / curvature if curvature < 0 else 0.0


def refine_by_correlation(gray_a: np.ndarray, gray_b: np.ndarray, xy_a: np.ndarray,
                          xy_b: np.ndarray, patch_radius: int = PATCH_RADIUS,
                          search_radius: int = SEARCH_RADIUS, min_score: float = MIN_SCORE,
                          min_contrast: float = MIN_CONTRAST) -> tuple:
    """Place each match in B where A's patch around it correlates best, near the guess.

    Args:
        gray_a: (H, W) float32 grey image of A.
        gray_b: (H, W) float32 grey image of B.
        xy_a: (M, 2) matched points in A (x = column); the patch is taken at the nearest pixel.
        xy_b: (M, 2) their guessed positions in B.
        patch_radius: Half size of the square patch.
        search_radius: Largest shift from the guess, in pixels, along x and y.
        min_score: Lowest correlation peak accepted.
        min_contrast: Lowest grey-level standard deviation of A's patch.

    Returns:
        (xy_a (M, 2) at A's nearest pixels, xy_b (M, 2) refined where accepted and the guess
        elsewhere, accepted (M,) bool). A patch or search window that leaves the image is not
        accepted.

    Raises:
        ValueError: On images of different shapes or non-float32, or mismatched point arrays.
    """
    if gray_a.shape != gray_b.shape or gray_a.ndim != 2 or gray_a.dtype != np.float32 or \
            gray_b.dtype != np.float32 or xy_a.shape != xy_b.shape or xy_a.shape[1:] != (2,):
        raise ValueError(f'refine_by_correlation got images {gray_a.shape} {gray_a.dtype} / '
                         f'{gray_b.shape} {gray_b.dtype}, points {xy_a.shape} / {xy_b.shape}')
    height, width = gray_a.shape
    pixels_a = np.round(xy_a).astype(int)  # (M, 2)
    guesses = np.round(xy_b).astype(int)  # (M, 2)
    refined = np.array(xy_b, np.float64)
    accepted = np.zeros(len(xy_a), bool)
    r, s = patch_radius, search_radius
    for index, ((ax, ay), (bx, by)) in enumerate(zip(pixels_a, guesses)):
        if not (r <= ax < width - r and r <= ay < height - r and
                r + s <= bx < width - r - s and r + s <= by < height - r - s):
            continue
        patch = gray_a[ay - r:ay + r + 1, ax - r:ax + r + 1]  # (2r+1, 2r+1)
        if patch.std() < min_contrast:
            continue
        window = gray_b[by - r - s:by + r + s + 1, bx - r - s:bx + r + s + 1]
        score = cv2.matchTemplate(window, patch, cv2.TM_CCOEFF_NORMED)  # (2s+1, 2s+1)
        _, best, _, (px, py) = cv2.minMaxLoc(score)
        if best < min_score:
            continue
        dx = _parabola_peak(*score[py, px - 1:px + 2]) if 0 < px < 2 * s else 0.0
        dy = _parabola_peak(*score[py - 1:py + 2, px]) if 0 < py < 2 * s else 0.0
        refined[index] = (bx - s + px + dx, by - s + py + dy)
        accepted[index] = True
    return pixels_a.astype(np.float64), refined, accepted


def roll_similarity(xy_a: np.ndarray, xy_b: np.ndarray) -> np.ndarray | None:
    """Return the similarity A -> B fitted to the matches when it rolls far, else None.

    Args:
        xy_a: (M, 2) matched points in A.
        xy_b: (M, 2) their positions in B.

    Returns:
        (2, 3) float64 ``p_b = S @ (x, y, 1)`` (OpenCV ``estimateAffinePartial2D``, RANSAC
        at :data:`ROLL_FIT_THRESHOLD_PX`) when it turns by more than
        :data:`MAX_UNROTATED_ROLL_DEG`; None for a smaller roll or no fit.
    """
    if len(xy_a) < 3:
        return None
    similarity, _ = cv2.estimateAffinePartial2D(xy_a, xy_b, method=cv2.RANSAC,
                                                ransacReprojThreshold=ROLL_FIT_THRESHOLD_PX)
    if similarity is None:
        return None
    roll = np.degrees(np.arctan2(similarity[1, 0], similarity[0, 0]))
    return similarity if abs(roll) > MAX_UNROTATED_ROLL_DEG else None


def correlated_matches(rgb_a: np.ndarray, rgb_b: np.ndarray, xy_a: np.ndarray,
                       xy_b: np.ndarray, min_matches: int = MIN_MATCHES) -> tuple:
    """Refine matches by correlation and keep the placed ones (all, when too few are placed).

    Args:
        rgb_a: (H, W, 3) uint8 colour image of A.
        rgb_b: (H, W, 3) uint8 colour image of B.
        xy_a: (M, 2) matched points in A.
        xy_b: (M, 2) their positions in B (e.g. ``refine_dense_matches``).
        min_matches: Fewest placed matches kept on their own.

    Returns:
        (xy_a, xy_b, placed): the placed matches (A at its pixels) and True, or the matches as
        given and False when fewer than ``min_matches`` were placed.
    """
    gray_a, gray_b = (cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
                      for rgb in (rgb_a, rgb_b))
    similarity = roll_similarity(xy_a, xy_b)
    if similarity is None:
        pixels_a, refined, accepted = refine_by_correlation(gray_a, gray_b, xy_a, xy_b)
    else:  # place in B turned back into A's orientation, then map to B
        turned_b = cv2.warpAffine(gray_b, similarity, gray_b.shape[::-1],
                                  flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
        back = cv2.invertAffineTransform(similarity)  # B pixel -> turned B pixel
        pixels_a, placed, accepted = refine_by_correlation(
            gray_a, turned_b, xy_a, xy_b @ back[:, :2].T + back[:, 2])
        refined = placed @ similarity[:, :2].T + similarity[:, 2]
    if accepted.sum() < min_matches:
        return xy_a, xy_b, False
    return pixels_a[accepted], refined[accepted], True
