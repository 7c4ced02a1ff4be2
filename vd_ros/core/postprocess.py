"""Model outputs -> products: segmentation labels and colours, feature PCA.

Depth alignment lives in :mod:`vd_ros.core.depth_alignment`.

Everything maps back to the camera frame through the :class:`~vd_ros.core.preprocess.Letterbox`
that :func:`~vd_ros.core.preprocess.prepare_inputs` returned.
"""

import functools
from typing import NamedTuple

import cv2
import numpy as np

from vd_ros.core.preprocess import CV_MAX_CHANNELS, Letterbox


class PCABasis(NamedTuple):
    """A fixed 3-component PCA projection of D-dimensional features.

    Attributes:
        mean: (D,) feature mean subtracted before projecting.
        components: (3, D) unit principal directions, sign-fixed (largest loading positive).
    """

    mean: np.ndarray
    components: np.ndarray


def labels_from_logits(logits: np.ndarray, letterbox: Letterbox, out_dtype=None) -> np.ndarray:
    """Per-pixel class labels at camera resolution from segmentation logits.

    The logits are resampled bilinearly from their grid (padding dropped) and the argmax is
    taken there, so label borders follow the logits and not the blocks of the model grid. The
    argmax is taken at the finer of the camera and the model-input content resolution: when the
    letterbox shrinks the camera image, labels are computed on the content pixels of the model
    input and mapped to the camera with nearest neighbour. This bounds the cost (K x model
    input pixels instead of K x camera pixels) and places label borders to within one model
    input pixel (1 / ``letterbox.scale`` camera pixels), far finer than the logits themselves.

    Args:
        logits: (K, h, w) float logits over the model input (any grid, e.g. the patch grid).
        letterbox: The letterbox of the frame.
        out_dtype: Label dtype; default uint8 for K <= 256, else uint16.

    Returns:
        (H, W) labels at ``letterbox.in_size``.

    Raises:
        ValueError: For logits that are not (K, h, w) with 1 <= K <= 65536.
    """
    logits = np.asarray(logits)
    if logits.ndim != 3 or not 1 <= logits.shape[0] <= 65536:
        raise ValueError(f'logits must be (K, h, w) with 1 <= K <= 65536, got {logits.shape}')
    if out_dtype is None:
        out_dtype = np.uint8 if logits.shape[0] <= 256 else np.uint16
    if logits.shape[0] == 1:
        return np.zeros(letterbox.in_size, dtype=out_dtype)
    hwk = np.ascontiguousarray(logits.transpose(1, 2, 0), dtype=np.float32)  # (h, w, K)
    if letterbox.scale >= 1.0:
        return _argmax_channels(letterbox.restore(hwk, 'linear'), out_dtype)  # (H, W)
    content = letterbox.content
    model_labels = np.zeros(letterbox.out_size, dtype=out_dtype)  # (H', W')
    rows, cols = letterbox.content_size
    model_labels[content.pad_top:content.pad_top + rows,
                 content.pad_left:content.pad_left + cols] = _argmax_channels(
                     content.restore(hwk, 'linear'), out_dtype)  # (rows, cols)
    return letterbox.restore(model_labels, 'nearest')  # (H, W)


def _argmax_channels(values: np.ndarray, out_dtype) -> np.ndarray:
    """``np.argmax(values, axis=2)`` of (H, W, K) float32 as ``out_dtype``, ~2x faster.

    A running maximum over whole channel planes (OpenCV compare, max and masked copy) instead
    of numpy's per-pixel scan of K values. Ties go to the first channel, as in argmax; a NaN
    never wins.
    """
    channels = [plane for start in range(0, values.shape[2], CV_MAX_CHANNELS)
                for plane in cv2.split(np.ascontiguousarray(
                    values[:, :, start:start + CV_MAX_CHANNELS]))]  # K x (H, W)
    best = channels[0].copy()
    labels = np.zeros(best.shape, np.uint8 if len(channels) <= 256 else np.uint16)
    level = np.empty_like(labels)
    for k in range(1, len(channels)):
        better = cv2.compare(channels[k], best, cv2.CMP_GT)  # (H, W) uint8 mask
        cv2.max(best, channels[k], dst=best)
        level.fill(k)
        cv2.copyTo(level, better, labels)
    return labels.astype(out_dtype, copy=False)  # e.g. int64 for torch, which OpenCV lacks


def label_palette(n: int) -> np.ndarray:
    """Distinct, deterministic colours for ``n`` labels: the PASCAL VOC colour map.

    Label 0 is black; label 1 is (128, 0, 0), 2 is (0, 128, 0), 3 is (128, 128, 0)...; the bits
    of the label are spread over the high bits of R, G and B, so the first 2**24 labels differ.

    Args:
        n: Number of labels (>= 0).

    Returns:
        (n, 3) uint8 RGB colours.
    """
    labels = np.arange(n, dtype=np.int64)
    palette = np.zeros((n, 3), dtype=np.int64)
    for bit in range(8):
        for channel in range(3):
            palette[:, channel] |= ((labels >> (3 * bit + channel)) & 1) << (7 - bit)
    return palette.astype(np.uint8)


@functools.lru_cache(maxsize=8)
def _cached_palette(n: int) -> np.ndarray:
    """Return a read-only :func:`label_palette` of ``n`` labels, computed once per ``n``."""
    palette = label_palette(n)
    palette.flags.writeable = False
    return palette


def class_palette(class_colors=(), n: int = 256) -> np.ndarray:
    """Return the colours of ``n`` labels: ``class_colors`` first, then :func:`label_palette`.

    Args:
        class_colors: ``(r, g, b)`` of labels 0, 1, ... (a model's ``class_colors``); may be
            empty.
        n: Number of labels (at least ``len(class_colors)``).

    Returns:
        (n, 3) uint8 RGB, read-only.
    """
    if len(class_colors) == 0:
        return _cached_palette(n)
    palette = label_palette(max(n, len(class_colors)))
    palette[:len(class_colors)] = np.asarray(class_colors, dtype=np.uint8).reshape(-1, 3)
    palette.flags.writeable = False
    return palette


def colorize_labels(labels: np.ndarray, rgb: np.ndarray = None, alpha: float = 0.5,
                    palette: np.ndarray = None) -> np.ndarray:
    """Colour a label image, optionally blended over the camera image.

    Args:
        labels: (H, W) integer labels.
        rgb: Optional (H, W, 3) uint8 image; label-0 (background) pixels keep it unchanged,
            others become ``(1 - alpha) * rgb + alpha * colour`` rounded to the nearest integer
            (OpenCV ``addWeighted``, float32 arithmetic).
        alpha: Weight of the label colour, in [0, 1].
        palette: (N, 3) uint8 colour of each label (:func:`class_palette`), N > the largest
            label (256 for uint8 labels); None: :func:`label_palette`.

    Returns:
        (H, W, 3) uint8 RGB (``rgb8``).

    Raises:
        ValueError: For non-integer or negative labels, a size mismatch or alpha out of range.
    """
    labels = np.asarray(labels)
    if labels.ndim != 2 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f'labels must be (H, W) integers, got {labels.shape} {labels.dtype}')
    if labels.size and np.issubdtype(labels.dtype, np.signedinteger) and labels.min() < 0:
        raise ValueError(f'labels must be >= 0, got {labels.min()}')
    count = 256 if labels.dtype == np.uint8 else int(labels.max()) + 1 if labels.size else 1
    if palette is None:
        palette = _cached_palette(count)
    elif len(palette) < count:
        palette = class_palette(palette, count)
    if labels.dtype == np.uint8:  # a 3-channel table lookup, ~25 % faster than np.take
        colours = cv2.LUT(cv2.cvtColor(labels, cv2.COLOR_GRAY2RGB),
                          np.ascontiguousarray(palette[:256, None]))  # (H, W, 3)
    else:
        colours = np.take(palette, labels, axis=0)  # (H, W, 3)
    if rgb is None:
        return colours
    rgb = np.ascontiguousarray(rgb)
    if rgb.shape != labels.shape + (3,) or rgb.dtype != np.uint8:
        raise ValueError(
            f'rgb must be {labels.shape + (3,)} uint8 like the labels, got {rgb.shape} '
            f'{rgb.dtype}')
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f'alpha must be in [0, 1], got {alpha}')
    blended = cv2.addWeighted(rgb, 1.0 - alpha, colours, alpha, 0.0)  # (H, W, 3)
    return cv2.copyTo(rgb, (labels == 0).view(np.uint8), blended)  # background: the image


def feature_pca_rgb(features: np.ndarray, basis: PCABasis = None) -> tuple:
    """Visualise dense features as RGB by their first three principal components (DINOv2).

    Each component is min-max normalised over the frame to [0, 255]. Pass the returned basis
    back in on later frames to keep the colours stable over time.

    Args:
        features: (D, h, w) features, D >= 3.
        basis: A fixed projection from an earlier call; None computes it from these features.

    Returns:
        ``(image, basis)``: (h, w, 3) uint8 image and the :class:`PCABasis` used.

    Raises:
        ValueError: For a wrong shape, non-finite features or a basis of another D.
    """
    features = np.asarray(features)
    if features.ndim != 3 or features.shape[0] < 3:
        raise ValueError(f'features must be (D, h, w) with D >= 3, got {features.shape}')
    dim, height, width = features.shape
    samples = features.reshape(dim, -1).T.astype(np.float64)  # (h * w, D)
    if not np.isfinite(samples).all():
        raise ValueError(f'features hold {np.count_nonzero(~np.isfinite(samples))} non-finite '
                         'values')
    if basis is None:
        mean = samples.mean(axis=0)  # (D,)
        centred = samples - mean
        _, vectors = np.linalg.eigh(centred.T @ centred)  # (D, D), ascending eigenvalues
        components = vectors[:, ::-1][:, :3].T  # (3, D)
        largest = np.argmax(np.abs(components), axis=1)
        components *= np.sign(components[np.arange(3), largest])[:, None]
        basis = PCABasis(mean=mean, components=components)
    elif basis.components.shape != (3, dim) or basis.mean.shape != (dim,):
        raise ValueError(f'basis is for {basis.components.shape[1]}-D features, got D={dim}')
    # einsum, not BLAS matmul: a tiny product that BLAS threads would only slow down.
    projected = np.einsum('nd,kd->nk', samples - basis.mean, basis.components)  # (h * w, 3)
    low, high = projected.min(axis=0), projected.max(axis=0)
    span = np.where(high > low, high - low, 1.0)
    image = np.rint((projected - low) / span * 255.0).astype(np.uint8)
    return image.reshape(height, width, 3), basis
