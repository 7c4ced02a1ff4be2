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
_SPREAD_BITS = ((8, 0x00FF00FF), (4, 0x0F0F0F0F), (2, 0x33333333), (1, 0x55555555))


def interpolate_linear(points_xy: np.ndarray, values: np.ndarray, shape: tuple,
                       step: int = 1) -> np.ndarray:
    """Interpolate scattered values linearly at the pixel centres of a grid.

    Args:
        points_xy: (N, 2) float (x, y) positions in pixels (pixel centres at integers),
            distinct and inside the grid (-0.5 <= x < W - 0.5, -0.5 <= y < H - 0.5).
        values: (N,) finite values at the points.
        shape: (H, W) of the grid.
        step: Evaluate at every ``step``-th pixel centre only and upsample bilinearly: exact
            inside a triangle, the kinks between triangles rounded off over ``step`` pixels.
            1 evaluates every pixel.

    Returns:
        float32 (H, W): inside the convex hull of the points the piecewise-linear interpolant
        over their Delaunay triangulation; outside it the value of the nearest point, found by
        OpenCV's 5x5 distance transform on the ``step`` grid with the points snapped to it (at
        near-ties another almost as near point may win). With ``step > 1`` the values within
        ``step`` pixels of the hull and of the borders between nearest points are blended.

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
    grid_points = (points_xy - (step - 1) / 2.0) / step  # grid pixel centres at integers
    linear = np.full((-(-shape[0] // step), -(-shape[1] // step)), np.nan, np.float32)
    if len(points_xy) >= 3:
        corners, corner_values = _delaunay_triangles(grid_points, values, linear.shape[1],
                                                     linear.shape[0])
        _rasterize(linear, corners, corner_values)
    outside = np.isnan(linear)
    if outside.any():
        if step > 1 and not outside.all():
            # Bilinear upsampling reads one grid pixel beyond the hull: give that ring the
            # mean of its covered neighbours (the plane to first order), not a nearest value.
            covered = (~outside).astype(np.float32)
            weight = cv2.blur(covered, (3, 3))
            ring = outside & (weight > 0)
            extended = cv2.blur(np.where(outside, 0.0, linear), (3, 3)) / np.maximum(weight, 1e-6)
            linear = cv2.copyTo(extended, ring.view(np.uint8), linear)
            outside &= ~ring
        nearest = _nearest_values(grid_points, values, linear.shape)
        linear = cv2.copyTo(nearest, outside.view(np.uint8), linear)
    return _upsample(linear, step, shape)


def _upsample(image: np.ndarray, step: int, shape: tuple) -> np.ndarray:
    """Resize the grid of every ``step``-th pixel centre bilinearly back to (H, W)."""
    if step == 1:
        return image
    height, width = image.shape
    # At an integer factor cv2.resize maps the grid pixel centres onto the block centres.
    return cv2.resize(image, (width * step, height * step),
                      interpolation=cv2.INTER_LINEAR)[:shape[0], :shape[1]]


def _delaunay_triangles(points_xy: np.ndarray, values: np.ndarray, width: int,
                        height: int) -> tuple:
    """Return the (T, 3, 2) corners and (T, 3) corner values of the Delaunay triangles."""
    # Subdiv2D starts from an outer triangle about 3x the rectangle's size; so near, it keeps
    # thin triangles on the convex hull out of the triangulation. A rectangle 201x the grid
    # puts it far enough to find every hull triangle in a 640x480 grid (checked against qhull).
    margin_x, margin_y = _OUTER_MARGIN * (width + 1), _OUTER_MARGIN * (height + 1)
    subdiv = cv2.Subdiv2D((-margin_x, -margin_y, 2 * margin_x + width, 2 * margin_y + height))
    # Subdiv2D walks to each new point from the previous one: Z-order makes the walks short
    # (~30 % faster than a random order for 1500 points).
    subdiv.insert(points_xy[np.argsort(_z_order(points_xy))].astype(np.float32))
    # (T', 3, 2); an empty tuple when the points are collinear.
    corners = np.asarray(subdiv.getTriangleList(), np.float64).reshape(-1, 3, 2)
    # Drop the triangles that touch the corners of the outer triangle.
    inside = ((corners[..., 0] >= -1) & (corners[..., 0] <= width) &
              (corners[..., 1] >= -1) & (corners[..., 1] <= height)).all(axis=1)
    corners = corners[inside]
    # Subdiv2D hands back the float32 coordinates it stored: find each corner's point by them,
    # with the two float32 bit patterns as one exact 64-bit key.
    keys = _position_keys(points_xy.astype(np.float32))  # (N,)
    order = np.argsort(keys)
    corner_keys = _position_keys(corners.reshape(-1, 2).astype(np.float32))  # (3 T,)
    index = order[np.clip(np.searchsorted(keys[order], corner_keys), 0, len(keys) - 1)]
    return corners, values[index].reshape(-1, 3)


def _z_order(points_xy: np.ndarray) -> np.ndarray:
    """Return the Morton (Z-order) code of each point on a 1024 x 1024 lattice over them."""
    low, span = points_xy.min(axis=0), np.ptp(points_xy, axis=0)
    lattice = (points_xy - low) * (1023.0 / np.maximum(span, 1e-9))  # (N, 2) in [0, 1023]
    code = np.zeros(len(points_xy), np.uint32)
    for axis in (0, 1):
        bits = lattice[:, axis].astype(np.uint32)
        for shift, mask in _SPREAD_BITS:  # the 10 bits to the even positions
            bits = (bits | (bits << shift)) & mask
        code |= bits << axis
    return code


def _position_keys(xy: np.ndarray) -> np.ndarray:
    """Return a uint64 per float32 (x, y) row, equal exactly when both coordinates are."""
    bits = np.ascontiguousarray(xy, dtype=np.float32).view(np.uint32).astype(np.uint64)
    return (bits[:, 0] << np.uint64(32)) | bits[:, 1]


def _rasterize(linear: np.ndarray, corners: np.ndarray, corner_values: np.ndarray) -> None:
    """Write each triangle's plane into every grid pixel centre the triangle covers.

    Each triangle is cut into one span of pixels per grid row, between its long edge (top to
    bottom corner) and one of its two short edges; along a span the value is
    ``base + slope_x * column``. Pixels no triangle covers are left as they are.
    """
    height, width = linear.shape
    # Sort each triangle's corners by y (then x): top t, middle m, bottom b.
    order = np.lexsort((corners[..., 0], corners[..., 1]), axis=1)  # (T, 3)
    x = np.take_along_axis(corners[..., 0], order, axis=1)
    y = np.take_along_axis(corners[..., 1], order, axis=1)
    v = np.take_along_axis(corner_values, order, axis=1)
    dx1, dy1, dv1 = x[:, 1] - x[:, 0], y[:, 1] - y[:, 0], v[:, 1] - v[:, 0]
    dx2, dy2, dv2 = x[:, 2] - x[:, 0], y[:, 2] - y[:, 0], v[:, 2] - v[:, 0]
    det = dx1 * dy2 - dx2 * dy1  # twice the signed area; 0 for a degenerate triangle
    keep = det != 0
    x, y, v, det = x[keep], y[keep], v[keep], det[keep]
    slope_x = (dv1 * dy2 - dv2 * dy1)[keep] / det
    slope_y = (dx1 * dv2 - dx2 * dv1)[keep] / det

    def inverse_slope(top, bottom):  # x step per row along an edge; 0 for a flat edge
        rise = y[:, bottom] - y[:, top]
        return (x[:, bottom] - x[:, top]) / np.where(rise > 0, rise, 1.0)

    first_row = np.maximum(np.ceil(y[:, 0] - _EDGE_MARGIN), 0).astype(np.int64)
    last_row = np.minimum(np.floor(y[:, 2] + _EDGE_MARGIN), height - 1).astype(np.int64)
    rows = np.maximum(last_row - first_row + 1, 0)
    row = np.arange(rows.sum()) + np.repeat(first_row - (np.cumsum(rows) - rows), rows)  # (S,)

    def at_row(top, bottom):  # the x where an edge crosses each span's row
        # From the edge's top corner, with the same operands in both triangles that share the
        # edge, so that their spans meet without a gap.
        return (np.repeat(x[:, top], rows) +
                (row - np.repeat(y[:, top], rows)) * np.repeat(inverse_slope(top, bottom), rows))

    long_edge = at_row(0, 2)
    short_edge = np.where(row < np.repeat(y[:, 1], rows), at_row(0, 1), at_row(1, 2))
    first = np.maximum(np.ceil(np.minimum(long_edge, short_edge) - _EDGE_MARGIN), 0)
    last = np.minimum(np.floor(np.maximum(long_edge, short_edge) + _EDGE_MARGIN), width - 1)
    first, last = first.astype(np.int64), last.astype(np.int64)
    lengths = np.maximum(last - first + 1, 0)
    span_x = np.repeat(slope_x, rows)  # (S,)
    # The span's value at its first pixel, then slope_x per pixel to the right.
    span_first = (np.repeat(v[:, 0] - slope_x * x[:, 0] - slope_y * y[:, 0], rows) +
                  np.repeat(slope_y, rows) * row + span_x * first)
    pixel = np.arange(lengths.sum())  # (P,)
    offset = np.repeat(first - (np.cumsum(lengths) - lengths), lengths)  # column - pixel
    linear.ravel()[pixel + offset + np.repeat(row * width, lengths)] = (
        np.repeat(span_first - span_x * first, lengths) +
        np.repeat(span_x, lengths) * (pixel + offset))


def _nearest_values(points_xy: np.ndarray, values: np.ndarray, shape: tuple) -> np.ndarray:
    """Return float32 (H, W): the value of the nearest point (points snapped to pixels)."""
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
