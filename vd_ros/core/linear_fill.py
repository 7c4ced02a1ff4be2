"""Piecewise-linear interpolation of scattered values onto a pixel grid (numpy and OpenCV).

The points are triangulated (Delaunay, ``cv2.Subdiv2D``); every grid pixel centre inside their
convex hull gets the linear interpolation of its triangle's three corners, and every pixel
outside the hull the value of the nearest point. With the points at the known pixels this is
the classical linear depth fill (``training/eval/completion_baselines.py`` computes the same
with scipy's ``griddata``). The triangles are scan-converted row by row in numpy, so the cost
is one pass over the grid plus the triangulation.
"""

import cv2
import numpy as np

# A pixel centre on a triangle edge is given to both triangles (they agree there); the margin
# keeps float rounding of an edge crossing from dropping it from both.
_EDGE_MARGIN = 1e-6
_OUTER_MARGIN = 100


def interpolate_linear(points_xy: np.ndarray, values: np.ndarray, shape: tuple,
                       step: int = 1) -> np.ndarray:
    """Interpolate scattered values linearly at the pixel centres of a grid.

    Args:
        points_xy: (N, 2) float (x, y) positions in pixels (pixel centres at integers),
            distinct and inside the grid (-0.5 <= x < W - 0.5, -0.5 <= y < H - 0.5).
        values: (N,) values at the points.
        shape: (H, W) of the grid.
        step: Evaluate the interpolant at every ``step``-th pixel centre only and upsample it
            bilinearly (exact inside a triangle; within ``step`` pixels of a triangle edge the
            kink is rounded off). 1 evaluates every pixel.

    Returns:
        float32 (H, W): inside the convex hull of the points the piecewise-linear interpolant
        over their Delaunay triangulation; outside it the value of the nearest point (OpenCV's
        5x5 distance transform on the ``step`` grid with the points snapped to it, so at
        near-ties another almost as near point may win).

    Raises:
        ValueError: For no point, points and values of different lengths, or step < 1.
    """
    points_xy = np.asarray(points_xy, dtype=np.float64).reshape(-1, 2)
    values = np.asarray(values, dtype=np.float64).ravel()
    if not len(points_xy) or len(points_xy) != len(values):
        raise ValueError(f'need at least one point and one value per point, got '
                         f'{len(points_xy)} points and {len(values)} values')
    if step < 1:
        raise ValueError(f'step must be >= 1, got {step}')
    height, width = shape
    grid = (-(-height // step), -(-width // step))
    grid_points = (points_xy - (step - 1) / 2.0) / step  # step-grid pixel centres at integers
    linear = np.zeros(grid, np.float32)
    covered = np.zeros(grid, bool)
    if len(points_xy) >= 3:
        corners, corner_values = _delaunay_triangles(grid_points, values, grid[1], grid[0])
        _rasterize(linear, covered, corners, corner_values)
    if covered.all():
        return upsample_grid(linear, step, shape, cv2.INTER_LINEAR)
    nearest = _nearest_values(grid_points, values, grid)
    if step == 1:
        return np.where(covered, linear, nearest)
    if not covered.any():
        return upsample_grid(nearest, step, shape, cv2.INTER_NEAREST)
    # Bilinear upsampling reads one grid pixel beyond the hull: give that ring the mean of its
    # covered neighbours (the plane to first order), not the nearest point's value.
    weight = cv2.blur(covered.astype(np.float32), (3, 3))
    ring = ~covered & (weight > 0)
    linear[ring] = cv2.blur(linear, (3, 3))[ring] / weight[ring]
    inside = np.zeros(shape, np.uint8)
    hull = cv2.convexHull(np.rint(points_xy).astype(np.int32))
    cv2.fillConvexPoly(inside, hull, 1)
    return np.where(inside.view(bool), upsample_grid(linear, step, shape, cv2.INTER_LINEAR),
                    upsample_grid(nearest, step, shape, cv2.INTER_NEAREST))


def upsample_grid(image: np.ndarray, step: int, shape: tuple, interpolation: int) -> np.ndarray:
    """Resize a grid of every ``step``-th pixel back to ``shape``.

    Args:
        image: (ceil(H / step), ceil(W / step)) values at the centres of step x step blocks.
        step: Block size in pixels.
        shape: (H, W) to return.
        interpolation: ``cv2.INTER_LINEAR`` or ``cv2.INTER_NEAREST``.

    Returns:
        (H, W) image of the same dtype.
    """
    if step == 1:
        return image
    height, width = image.shape
    return cv2.resize(image, (width * step, height * step),
                      interpolation=interpolation)[:shape[0], :shape[1]]


def _delaunay_triangles(points_xy: np.ndarray, values: np.ndarray, width: int,
                        height: int) -> tuple:
    """Return the (T, 3, 2) corners and (T, 3) corner values of the Delaunay triangles."""
    # Subdiv2D starts from an outer triangle about 3x the rectangle's size; so near, it keeps
    # thin triangles on the convex hull out of the triangulation. A rectangle 201x the grid
    # puts it far enough to find every hull triangle in a 640x480 grid (checked against qhull).
    margin_x, margin_y = _OUTER_MARGIN * (width + 1), _OUTER_MARGIN * (height + 1)
    subdiv = cv2.Subdiv2D((-margin_x, -margin_y, 2 * margin_x + width, 2 * margin_y + height))
    subdiv.insert(points_xy.astype(np.float32))
    corners = subdiv.getTriangleList().reshape(-1, 3, 2).astype(np.float64)  # (T', 3, 2)
    # Drop the triangles that touch the corners of the outer triangle.
    inside = ((corners[..., 0] >= -1) & (corners[..., 0] <= width) &
              (corners[..., 1] >= -1) & (corners[..., 1] <= height)).all(axis=1)
    corners = corners[inside]
    # Subdiv2D hands back the float32 coordinates it stored: find each corner's point by them.
    # Complex numbers sort by real, then imaginary part: a key per distinct (x, y).
    stored = points_xy.astype(np.float32).astype(np.float64)
    keys = stored[:, 0] + 1j * stored[:, 1]
    order = np.argsort(keys)
    corner_keys = corners[..., 0] + 1j * corners[..., 1]  # (T, 3)
    index = order[np.clip(np.searchsorted(keys[order], corner_keys), 0, len(keys) - 1)]
    return corners, values[index]


def _rasterize(filled: np.ndarray, covered: np.ndarray, corners: np.ndarray,
               corner_values: np.ndarray) -> None:
    """Write each triangle's plane into every grid pixel centre the triangle covers.

    Each triangle is cut into one span of pixels per grid row; along a span the value is
    ``base + slope_x * column``.
    """
    height, width = filled.shape
    x, y, v = corners[..., 0], corners[..., 1], corner_values  # (T, 3) each
    dx1, dy1, dv1 = x[:, 1] - x[:, 0], y[:, 1] - y[:, 0], v[:, 1] - v[:, 0]
    dx2, dy2, dv2 = x[:, 2] - x[:, 0], y[:, 2] - y[:, 0], v[:, 2] - v[:, 0]
    det = dx1 * dy2 - dx2 * dy1  # twice the signed area; 0 for a degenerate triangle
    keep = det != 0
    x, y, v = x[keep], y[keep], v[keep]
    slope_x = (dv1 * dy2 - dv2 * dy1)[keep] / det[keep]
    slope_y = (dx1 * dv2 - dx2 * dv1)[keep] / det[keep]
    top = np.maximum(np.ceil(y.min(axis=1) - _EDGE_MARGIN), 0).astype(np.int64)
    bottom = np.minimum(np.floor(y.max(axis=1) + _EDGE_MARGIN), height - 1).astype(np.int64)
    heights = np.maximum(bottom - top + 1, 0)
    triangle = np.repeat(np.arange(len(x)), heights)  # (S,) one span per triangle and row
    row = np.arange(len(triangle)) + np.repeat(top - (np.cumsum(heights) - heights), heights)
    left = np.full(len(triangle), np.inf)
    right = np.full(len(triangle), -np.inf)
    for start, end in ((0, 1), (1, 2), (2, 0)):
        # Orient each edge from its lower to its upper corner, so that the two triangles that
        # share an edge compute bit-identical crossings.
        swap = (y[:, start] > y[:, end]) | ((y[:, start] == y[:, end]) &
                                            (x[:, start] > x[:, end]))
        xa, ya = np.where(swap, x[:, end], x[:, start]), np.where(swap, y[:, end], y[:, start])
        xb, yb = np.where(swap, x[:, start], x[:, end]), np.where(swap, y[:, start], y[:, end])
        with np.errstate(divide='ignore', invalid='ignore'):
            step = np.where(yb > ya, (xb - xa) / (yb - ya), 0.0)[triangle]  # (S,)
        xa, ya, xb, yb = xa[triangle], ya[triangle], xb[triangle], yb[triangle]
        crossing = xa + (row - ya) * step
        on_edge = (row >= ya - _EDGE_MARGIN) & (row <= yb + _EDGE_MARGIN)
        flat = ya == yb
        np.minimum(left, np.where(on_edge, np.where(flat, xa, crossing), np.inf), out=left)
        np.maximum(right, np.where(on_edge, np.where(flat, xb, crossing), -np.inf), out=right)
    first = np.maximum(np.ceil(left - _EDGE_MARGIN), 0).astype(np.int64)
    last = np.minimum(np.floor(right + _EDGE_MARGIN), width - 1).astype(np.int64)
    lengths = np.maximum(last - first + 1, 0)
    t = triangle
    base = v[t, 0] + slope_y[t] * (row - y[t, 0]) - slope_x[t] * x[t, 0]  # (S,)
    span = np.repeat(np.arange(len(t)), lengths)  # (P,) one entry per covered pixel
    column = np.arange(len(span)) + np.repeat(first - (np.cumsum(lengths) - lengths), lengths)
    index = np.repeat(row * width, lengths) + column
    filled.ravel()[index] = base[span] + slope_x[t][span] * column
    covered.ravel()[index] = True


def _nearest_values(points_xy: np.ndarray, values: np.ndarray, shape: tuple) -> np.ndarray:
    """Return the value of the nearest point at every pixel (points snapped to pixels)."""
    height, width = shape
    cols = np.clip(np.rint(points_xy[:, 0]), 0, width - 1).astype(np.int64)
    rows = np.clip(np.rint(points_xy[:, 1]), 0, height - 1).astype(np.int64)
    seeds = np.ones(shape, np.uint8)
    seeds[rows, cols] = 0
    seed_values = np.zeros(shape, np.float32)
    seed_values[rows, cols] = values
    # With DIST_LABEL_PIXEL every zero of the source is its own label, 1, 2, ... in row-major
    # order, the order of np.nonzero.
    _, labels = cv2.distanceTransformWithLabels(seeds, cv2.DIST_L2, 5,
                                                labelType=cv2.DIST_LABEL_PIXEL)
    return seed_values[seeds == 0][labels - 1]
