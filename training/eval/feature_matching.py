"""Local features for relative pose: ORB/SIFT keypoints, dense patch features, mutual NN.

Every method yields pixel positions in the original image plus one descriptor per position;
matching is mutual nearest neighbours in descriptor space for all of them (Hamming distance for
ORB, Euclidean for SIFT, cosine for dense features through Euclidean distance of unit vectors).
"""

import cv2
import numpy as np

KEYPOINT_METHODS = ('orb', 'sift')


def detect_keypoints(rgb: np.ndarray, method: str,
                     max_keypoints: int = 2000) -> tuple[np.ndarray, np.ndarray]:
    """Detect keypoints and compute descriptors with OpenCV.

    Args:
        rgb: uint8 (H, W, 3) image in RGB order.
        method: 'orb' or 'sift'.
        max_keypoints: Upper bound on the number of keypoints.

    Returns:
        (xy (N, 2) float pixel positions (x = column), descriptors (N, D): uint8 for ORB,
        float32 for SIFT). N may be 0.

    Raises:
        ValueError: On an unknown method or an image that is not uint8 (H, W, 3).
    """
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f'expected a uint8 (H, W, 3) image, got {rgb.dtype} {rgb.shape}')
    if method == 'orb':
        detector = cv2.ORB_create(nfeatures=max_keypoints)
    elif method == 'sift':
        detector = cv2.SIFT_create(nfeatures=max_keypoints)
    else:
        raise ValueError(f'unknown keypoint method {method!r}, expected one of '
                         f'{KEYPOINT_METHODS}')
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    keypoints, descriptors = detector.detectAndCompute(gray, None)
    xy = np.array([kp.pt for kp in keypoints], np.float64).reshape(-1, 2)
    if descriptors is None:
        descriptors = np.zeros((0, 32 if method == 'orb' else 128),
                               np.uint8 if method == 'orb' else np.float32)
    return xy, descriptors


def dense_feature_points(features: np.ndarray,
                         image_size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Turn a dense (D, h, w) feature map into patch-centre positions and unit descriptors.

    Args:
        features: (D, h, w) features covering the whole image (one per ViT patch).
        image_size: (H, W) of the original image the positions refer to.

    Returns:
        (xy (h*w, 2) patch centres in original pixels, descriptors (h*w, D) float32 with unit
        L2 norm).

    Raises:
        ValueError: If ``features`` is not 3-D.
    """
    if features.ndim != 3:
        raise ValueError(f'expected (D, h, w) features, got shape {features.shape}')
    dim, grid_h, grid_w = features.shape
    height, width = image_size
    cols, rows = np.meshgrid((np.arange(grid_w) + 0.5) * width / grid_w,
                             (np.arange(grid_h) + 0.5) * height / grid_h)  # (h, w) each
    xy = np.stack([cols.ravel(), rows.ravel()], axis=1) - 0.5  # (h*w, 2) pixel-centre coords
    descriptors = features.reshape(dim, -1).T.astype(np.float32)  # (h*w, D)
    norms = np.linalg.norm(descriptors, axis=1, keepdims=True)
    return xy, descriptors / np.maximum(norms, 1e-12)


def mutual_nearest_neighbours(descriptors_a: np.ndarray,
                              descriptors_b: np.ndarray) -> np.ndarray:
    """Match descriptors that are each other's nearest neighbour.

    uint8 descriptors (ORB) use the Hamming distance, float descriptors the Euclidean one
    (equal in ranking to cosine similarity for unit vectors).

    Args:
        descriptors_a: (Na, D) descriptors of image A.
        descriptors_b: (Nb, D) descriptors of image B, same dtype and D.

    Returns:
        int (M, 2) index pairs (index into A, index into B).

    Raises:
        ValueError: If the descriptor dtypes or widths differ.
    """
    if descriptors_a.dtype != descriptors_b.dtype or \
            descriptors_a.shape[1:] != descriptors_b.shape[1:]:
        raise ValueError(f'descriptor mismatch: {descriptors_a.dtype} {descriptors_a.shape} vs '
                         f'{descriptors_b.dtype} {descriptors_b.shape}')
    if len(descriptors_a) == 0 or len(descriptors_b) == 0:
        return np.zeros((0, 2), int)
    norm = cv2.NORM_HAMMING if descriptors_a.dtype == np.uint8 else cv2.NORM_L2
    matcher = cv2.BFMatcher(norm, crossCheck=True)
    matches = matcher.match(descriptors_a, descriptors_b)
    return np.array([(m.queryIdx, m.trainIdx) for m in matches], int).reshape(-1, 2)


def refine_dense_matches(anchors: np.ndarray, descriptors_b: np.ndarray, centres_b: np.ndarray,
                         grid: tuple[int, int], cells_b: np.ndarray,
                         temperature: float) -> np.ndarray:
    """Place matches in a dense map between its cells: soft-argmax over the 3 x 3 neighbours.

    A dense map puts a descriptor at each cell centre only (13 pixels apart for a 48-cell wide
    map of a VGA image). For a match of an anchor to cell ``c`` of B, the position becomes the
    mean of the centres of ``c`` and its (up to eight) neighbours weighted by
    ``softmax(similarity / temperature)``: the temperature the descriptors trained with turns
    similarities into the probabilities the loss fitted.

    Args:
        anchors: (M, D) unit descriptors of the matched points of A.
        descriptors_b: (h*w, D) unit descriptors of B's map, row-major over ``grid``.
        centres_b: (h*w, 2) the cells' centres in B's pixels, as ``dense_feature_points``
            returns them.
        grid: (h, w) of B's map.
        cells_b: (M,) matched cell index in B for each anchor.
        temperature: Softmax temperature (> 0).

    Returns:
        (M, 2) float64 positions in B's pixels (x = column).

    Raises:
        ValueError: On mismatched shapes or a temperature that is not positive.
    """
    grid_h, grid_w = grid
    if descriptors_b.shape[0] != grid_h * grid_w or centres_b.shape != (grid_h * grid_w, 2) \
            or anchors.shape[1:] != descriptors_b.shape[1:] \
            or cells_b.shape != (anchors.shape[0],) or not temperature > 0:
        raise ValueError(f'refine_dense_matches got anchors {anchors.shape}, map '
                         f'{descriptors_b.shape}, centres {centres_b.shape} on grid {grid}, '
                         f'cells {cells_b.shape}, temperature {temperature}')
    offsets = np.array([(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)])  # (9, 2)
    rows = cells_b[:, None] // grid_w + offsets[None, :, 0]  # (M, 9)
    cols = cells_b[:, None] % grid_w + offsets[None, :, 1]  # (M, 9)
    inside = (rows >= 0) & (rows < grid_h) & (cols >= 0) & (cols < grid_w)
    neighbours = np.clip(rows, 0, grid_h - 1) * grid_w + np.clip(cols, 0, grid_w - 1)
    similarity = np.einsum('md,mkd->mk', anchors, descriptors_b[neighbours])  # (M, 9)
    logits = np.where(inside, similarity / temperature, -np.inf)
    weights = np.exp(logits - logits.max(axis=1, keepdims=True))
    weights /= weights.sum(axis=1, keepdims=True)  # (M, 9)
    return np.einsum('mk,mkc->mc', weights, centres_b[neighbours])  # (M, 2)
