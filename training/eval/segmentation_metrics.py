"""Semantic-segmentation metrics from a confusion matrix: mIoU and pixel accuracy.

The confusion matrix is accumulated over a dataset (rows = ground truth, columns = prediction);
pixels whose label equals the ignore index do not count. mIoU averages the per-class IoU over the
classes that occur in the ground truth or the prediction (classes absent from both have no
defined IoU and are left out, as in mmsegmentation's nan-mean).
"""

import numpy as np


def confusion_matrix(pred: np.ndarray, target: np.ndarray, num_classes: int,
                     ignore_index: int | None = 255) -> np.ndarray:
    """Count (ground truth, prediction) label pairs.

    Args:
        pred: Integer predicted labels, any shape.
        target: Integer ground-truth labels, same shape as ``pred``.
        num_classes: Number of classes K; valid labels are 0..K-1.
        ignore_index: Ground-truth label to skip, or None.

    Returns:
        int64 (K, K) matrix; entry [i, j] counts pixels of class i predicted as j.

    Raises:
        ValueError: On shape mismatch, non-positive ``num_classes`` or a label outside 0..K-1
            (other than the ignore index in the ground truth).
    """
    if pred.shape != target.shape:
        raise ValueError(f'pred shape {pred.shape} != target shape {target.shape}')
    if num_classes <= 0:
        raise ValueError(f'num_classes must be positive, got {num_classes}')
    pred = pred.reshape(-1).astype(np.int64)
    target = target.reshape(-1).astype(np.int64)
    if ignore_index is not None:
        keep = target != ignore_index
        pred, target = pred[keep], target[keep]
    for name, labels in (('target', target), ('pred', pred)):
        bad = (labels < 0) | (labels >= num_classes)
        if np.any(bad):
            raise ValueError(
                f'{name} has label {int(labels[bad][0])} outside 0..{num_classes - 1}')
    counts = np.bincount(target * num_classes + pred, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes)


def per_class_iou(matrix: np.ndarray) -> np.ndarray:
    """Intersection over union per class; NaN for classes absent from target and prediction.

    Args:
        matrix: (K, K) confusion matrix from ``confusion_matrix``.

    Returns:
        float64 (K,) IoU per class.
    """
    matrix = matrix.astype(np.float64)
    intersection = np.diag(matrix)
    union = matrix.sum(axis=0) + matrix.sum(axis=1) - intersection
    with np.errstate(invalid='ignore', divide='ignore'):
        return np.where(union > 0, intersection / union, np.nan)


def mean_iou(matrix: np.ndarray) -> float:
    """Mean IoU over the classes present in target or prediction.

    Args:
        matrix: (K, K) confusion matrix.

    Returns:
        The mIoU as a fraction in [0, 1].

    Raises:
        ValueError: If the matrix counts no pixel.
    """
    if matrix.sum() == 0:
        raise ValueError('confusion matrix is empty: no labelled pixel was counted')
    return float(np.nanmean(per_class_iou(matrix)))


def pixel_accuracy(matrix: np.ndarray) -> float:
    """Fraction of counted pixels whose prediction equals the ground truth.

    Args:
        matrix: (K, K) confusion matrix.

    Returns:
        Pixel accuracy in [0, 1].

    Raises:
        ValueError: If the matrix counts no pixel.
    """
    total = matrix.sum()
    if total == 0:
        raise ValueError('confusion matrix is empty: no labelled pixel was counted')
    return float(np.trace(matrix) / total)
