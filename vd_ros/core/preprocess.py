"""Camera frame -> model inputs (aspect-preserving letterbox) and model outputs -> camera frame.

Pixel convention: pixel ``i`` covers ``[i, i + 1)`` and its centre is ``i + 0.5`` (OpenCV's
``resize``), so a camera pixel ``u`` lands at ``(u + 0.5) * s - 0.5 + pad_left`` in the model
input. Depth is never averaged: averaging depth across an edge invents surfaces that do not
exist, and averaging with a missing (0) pixel invents near depth. Dense depth is resampled with
nearest neighbour (``INTER_NEAREST_EXACT``); sparse depth (fewer valid pixels than
``SPARSE_SHARE`` of the image: LiDAR points projected into the camera, a SLAM map's points) is
splatted (:func:`splat_depth`), so that no point is lost on the way down. The padding of the
RGB and depth inputs is 0 (black, no measurement).
"""

from dataclasses import dataclass
from typing import Optional

import cv2
import numpy as np

from vd_ros.core.contract import ModelContract
from vd_ros.core.pde import PDEConfig, positional_depth_encoding

_RESIZE_FLAGS = {
    'nearest': cv2.INTER_NEAREST_EXACT,
    'linear': cv2.INTER_LINEAR,
    'cubic': cv2.INTER_CUBIC,
}
_WARP_FLAGS = {'nearest': cv2.INTER_NEAREST, 'linear': cv2.INTER_LINEAR}
# Depth with fewer valid pixels than this share of the image is splatted, not resampled: the
# splat keeps every point (0.6 ms for 1500 points at VGA, 4 ms for 100 k), nearest sampling keeps
# about 1 in 14 when VGA goes to 168 x 126.
SPARSE_SHARE = 0.25
CV_MAX_CHANNELS = 128  # OpenCV 5.0: warpAffine rejects more channels, split/Mat read them as 3-D


class EmptyDepthError(ValueError):
    """A depth image without a single valid (finite, positive) measurement."""


@dataclass(frozen=True)
class Letterbox:
    """An aspect-preserving resize into a fixed size with centred zero padding.

    Attributes:
        scale: Resize factor, ``min(H / h, W / w)``.
        pad_top: Rows of padding above the resized image in the model input.
        pad_left: Columns of padding left of the resized image.
        in_size: (h, w) of the camera image.
        out_size: (H, W) of the model input.
    """

    scale: float
    pad_top: int
    pad_left: int
    in_size: tuple
    out_size: tuple

    @property
    def content_size(self) -> tuple:
        """(rows, cols) of the resized camera image inside the model input."""
        return (int(round(self.in_size[0] * self.scale)),
                int(round(self.in_size[1] * self.scale)))

    @property
    def content(self) -> 'Letterbox':
        """The camera image's content in the model input, as a camera of its own.

        Same padding, no resize: its :meth:`restore` maps a model-frame map to the model
        input's content pixels (``content_size``) instead of the camera's.
        """
        return Letterbox(scale=1.0, pad_top=self.pad_top, pad_left=self.pad_left,
                         in_size=self.content_size, out_size=self.out_size)

    def apply(self, image: np.ndarray, interpolation: str = 'linear') -> np.ndarray:
        """Resize a camera-resolution image into the model input, padding with 0.

        Args:
            image: (h, w) or (h, w, C) array at ``in_size``.
            interpolation: ``'nearest'`` (depth, labels), ``'linear'`` or ``'cubic'`` (RGB:
                training resizes it bicubically, as the paper does).

        Returns:
            (H, W) or (H, W, C) array of the same dtype at ``out_size``.

        Raises:
            ValueError: For an image not at ``in_size`` or an unknown interpolation.
        """
        image = np.asarray(image)
        if tuple(image.shape[:2]) != tuple(self.in_size) or image.ndim not in (2, 3):
            raise ValueError(
                f'letterbox expects an image of size {tuple(self.in_size)}, got {image.shape}')
        if interpolation not in _RESIZE_FLAGS:
            raise ValueError(f'unknown interpolation {interpolation!r}, '
                             f'expected one of {sorted(_RESIZE_FLAGS)}')
        rows, cols = self.content_size
        resized = cv2.resize(image, (cols, rows), interpolation=_RESIZE_FLAGS[interpolation])
        out = np.zeros(tuple(self.out_size) + image.shape[2:], dtype=image.dtype)
        out[self.pad_top:self.pad_top + rows, self.pad_left:self.pad_left + cols] = (
            resized.reshape((rows, cols) + image.shape[2:]))
        return out

    def restore(self, array: np.ndarray, interpolation: str = 'nearest') -> np.ndarray:
        """Map a model-frame map back to the camera image: drop the padding and resize.

        The map may be at the model input size (H, W) or at any other grid over the same field
        of view, e.g. the patch grid (H / p, W / p); it is resampled once, straight to the
        camera grid, and the padding never leaks into the result (the border is replicated
        from the content).

        Args:
            array: (H', W') or (H', W', C) map, channels last, dtype uint8, uint16, int16,
                float32 or float64.
            interpolation: ``'nearest'`` (labels, depth) or ``'linear'`` (logits, features).

        Returns:
            (h, w) or (h, w, C) array of the same dtype at ``in_size``.

        Raises:
            ValueError: For a map of another rank, an unsupported dtype or interpolation.
        """
        array = np.asarray(array)
        if array.ndim not in (2, 3) or min(array.shape[:2]) < 1:
            raise ValueError(f'restore expects an (H, W) or (H, W, C) map, got {array.shape}')
        if interpolation not in _WARP_FLAGS:
            raise ValueError(f'unknown interpolation {interpolation!r}, '
                             f'expected one of {sorted(_WARP_FLAGS)}')
        crop, transform = self._camera_to_map(array.shape[:2])
        content = array[crop]
        height, width = self.in_size
        flags = _WARP_FLAGS[interpolation] | cv2.WARP_INVERSE_MAP
        channels = array.shape[2] if array.ndim == 3 else 0
        if channels > CV_MAX_CHANNELS:
            chunks = [self.restore(array[:, :, start:start + CV_MAX_CHANNELS], interpolation)
                      for start in range(0, channels, CV_MAX_CHANNELS)]
            return np.concatenate(chunks, axis=2)  # (h, w, C)
        try:
            if _is_plain_resize(transform, content.shape[:2], (height, width)):
                # The same centre-to-centre mapping, 3-6x faster than warpAffine at VGA.
                restored = cv2.resize(content, (width, height),
                                      interpolation=_RESIZE_FLAGS[interpolation])
            else:
                restored = cv2.warpAffine(content, transform, (width, height), flags=flags,
                                          borderMode=cv2.BORDER_REPLICATE)
        except cv2.error as error:
            raise ValueError(f'cannot restore a map of dtype {array.dtype}: {error}') from None
        return restored.reshape((height, width) + array.shape[2:])

    def _camera_to_map(self, map_size: tuple) -> tuple:
        """Return the crop of a map grid holding the content and camera->crop affine (2x3)."""
        out_rows, out_cols = self.out_size
        rows, cols = self.content_size
        transform = np.zeros((2, 3), dtype=np.float64)
        crop = []
        for axis, (pad, content, out, camera, grid) in enumerate((
                (self.pad_left, cols, out_cols, self.in_size[1], map_size[1]),
                (self.pad_top, rows, out_rows, self.in_size[0], map_size[0]))):
            grid_scale = grid / out
            start = int(np.floor(pad * grid_scale))
            stop = max(start + 1, int(np.ceil((pad + content) * grid_scale)))
            # camera u -> model x = (u + .5) * content / camera - .5 + pad
            #          -> grid g = (x + .5) * grid_scale - .5 - start
            gain = content / camera * grid_scale
            transform[axis, axis] = gain
            transform[axis, 2] = 0.5 * gain + pad * grid_scale - 0.5 - start
            crop.append(slice(start, stop))
        return (crop[1], crop[0]), transform


def _is_plain_resize(transform: np.ndarray, crop_size: tuple, camera_size: tuple) -> bool:
    """Whether a camera->crop affine is ``cv2.resize``'s mapping of the whole crop.

    That is ``x = (u + 0.5) * crop / camera - 0.5`` on both axes: the crop holds exactly the
    content, with no fractional grid cell at its borders (e.g. a model-input-sized map without
    padding, or a patch grid that divides it).
    """
    gains = np.array([crop_size[1] / camera_size[1], crop_size[0] / camera_size[0]])
    expected = np.array([[gains[0], 0.0, 0.5 * gains[0] - 0.5],
                         [0.0, gains[1], 0.5 * gains[1] - 0.5]])
    return bool(np.abs(transform - expected).max() < 1e-9)


def letterbox_params(in_size: tuple, out_size: tuple) -> Letterbox:
    """Return the aspect-preserving, centred letterbox from ``in_size`` into ``out_size``.

    Args:
        in_size: (h, w) of the camera image.
        out_size: (H, W) of the model input.

    Returns:
        The letterbox; the resized image fills ``out_size`` along at least one axis.

    Raises:
        ValueError: For a non-positive size.
    """
    in_h, in_w = (int(v) for v in in_size)
    out_h, out_w = (int(v) for v in out_size)
    if min(in_h, in_w, out_h, out_w) < 1:
        raise ValueError(f'letterbox sizes must be positive, got {in_size} -> {out_size}')
    scale = min(out_h / in_h, out_w / in_w)
    rows = min(out_h, max(1, int(round(in_h * scale))))
    cols = min(out_w, max(1, int(round(in_w * scale))))
    return Letterbox(scale=scale, pad_top=(out_h - rows) // 2, pad_left=(out_w - cols) // 2,
                     in_size=(in_h, in_w), out_size=(out_h, out_w))


def check_frame(rgb: np.ndarray, depth_m: np.ndarray) -> int:
    """Check that an RGB image and a registered depth image form one usable frame.

    Depth must be registered to the colour camera (same size, same pixel grid), as
    ``depth_image_proc/register`` or the camera driver's aligned-depth stream provide.

    Args:
        rgb: (H, W, 3) uint8 RGB.
        depth_m: (H, W) depth in metres, 0 / NaN where invalid.

    Returns:
        The number of valid (finite, positive) depth pixels.

    Raises:
        ValueError: Wrong shapes or dtype, or RGB and depth of different sizes.
        EmptyDepthError: When the depth image has no finite, positive pixel.
    """
    rgb, depth_m = np.asarray(rgb), np.asarray(depth_m)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f'rgb must be (H, W, 3) uint8, got {rgb.shape} {rgb.dtype}')
    if depth_m.ndim != 2:
        raise ValueError(f'depth must be (H, W) metres, got shape {depth_m.shape}')
    if rgb.shape[:2] != depth_m.shape:
        raise ValueError(
            f'rgb {rgb.shape[:2]} and depth {depth_m.shape} differ in size; register the '
            'depth image to the colour camera first')
    with np.errstate(invalid='ignore'):
        valid = np.count_nonzero(np.isfinite(depth_m) & (depth_m > 0))
    if valid == 0:
        raise EmptyDepthError(f'depth image {depth_m.shape} has no valid (finite, > 0) pixel')
    return valid


def splat_depth(depth_m: np.ndarray, letterbox: Letterbox) -> np.ndarray:
    """Move every valid depth pixel to its nearest pixel of the model input grid.

    A nearest-neighbour resize samples one camera pixel per model pixel, right for dense depth
    but, downscaling VGA to 168 x 126, it drops about 13 of 14 points of a sparse input; the
    splat keeps them all (as many as there are model pixels).

    Args:
        depth_m: (h, w) depth in metres at camera resolution; 0, NaN, Inf = invalid.
        letterbox: Camera -> model letterbox.

    Returns:
        float32 (H, W) depth in the model grid; 0 where no input pixel landed; on collisions
        the nearest depth wins (it occludes the others).
    """
    with np.errstate(invalid='ignore'):
        rows, cols = np.nonzero(np.isfinite(depth_m) & (depth_m > 0.0))
    # Pixel centres: camera u -> model x = (u + 0.5) * scale - 0.5 + pad.
    out_h, out_w = letterbox.out_size
    model_rows = np.clip(np.rint((rows + 0.5) * letterbox.scale - 0.5 + letterbox.pad_top)
                         .astype(np.intp), 0, out_h - 1)
    model_cols = np.clip(np.rint((cols + 0.5) * letterbox.scale - 0.5 + letterbox.pad_left)
                         .astype(np.intp), 0, out_w - 1)
    splat = np.full((out_h, out_w), np.inf, np.float32)
    np.minimum.at(splat, (model_rows, model_cols), depth_m[rows, cols].astype(np.float32))
    splat[np.isinf(splat)] = 0.0
    return splat


def prepare_inputs(rgb: np.ndarray, depth_m: np.ndarray, contract: ModelContract,
                   splat: Optional[bool] = None) -> tuple:
    """Turn a camera frame into the model's ``rgb`` and ``pde`` inputs (:func:`encode_frame`).

    Args:
        rgb: (h, w, 3) uint8 RGB.
        depth_m: (h, w) depth in metres registered to ``rgb``; 0 / NaN / Inf are invalid.
        contract: The model contract (input size and PDE parameters).
        splat: See :func:`encode_frame`.
    """
    return encode_frame(rgb, depth_m, contract.input_size, contract.pde, splat)


def encode_frame(rgb: np.ndarray, depth_m: np.ndarray, input_size: tuple, pde_config: PDEConfig,
                 splat: Optional[bool] = None) -> tuple:
    """Letterbox a camera frame into a model input of ``input_size`` and encode its depth.

    Args:
        rgb: (h, w, 3) uint8 RGB.
        depth_m: (h, w) depth in metres registered to ``rgb``; 0 / NaN / Inf are invalid.
        input_size: (H, W) of the model input.
        pde_config: Parameters of the positional depth encoding.
        splat: Splat the depth (True) or resample it by nearest neighbour (False); None
            decides by its density (``SPARSE_SHARE``, module docstring).

    Returns:
        ``(rgb_in, pde, letterbox)``: rgb_in float32 (1, 3, H, W) in [0, 1], pde float32
        (1, C, H, W), and the :class:`Letterbox` that maps outputs back to the camera.

    Raises:
        ValueError, EmptyDepthError: See :func:`check_frame`.
    """
    valid = check_frame(rgb, depth_m)
    letterbox = letterbox_params(rgb.shape[:2], input_size)
    # Bicubic, as training resized every image the model saw (training/data/transforms.py).
    rgb_model = letterbox.apply(rgb, 'cubic')  # (H, W, 3)
    depth = np.asarray(depth_m, dtype=np.float32)
    if splat is None:
        splat = valid < SPARSE_SHARE * depth.size
    if splat:  # sparse: every point reaches the model
        depth_model = splat_depth(depth, letterbox)  # (H, W)
    else:  # dense: one sample per model pixel, as training resized depth
        depth_model = letterbox.apply(depth, 'nearest')  # (H, W)
    rgb_in = np.empty((1, 3) + tuple(input_size), dtype=np.float32)  # (1, 3, H, W)
    np.divide(rgb_model.transpose(2, 0, 1), np.float32(255.0), out=rgb_in[0])
    pde = positional_depth_encoding(depth_model, pde_config)[None]  # (1, C, H, W)
    return rgb_in, pde, letterbox
