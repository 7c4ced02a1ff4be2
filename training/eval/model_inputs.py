"""Model inputs of an evaluation frame whose depth may be sparse: letterbox, splat, encode.

The node resizes its depth input with nearest neighbour (``vd_ros.core.preprocess``), right for
a camera's dense depth, but a nearest resize drops most points of a sparse input when it
downscales (640 x 480 to 168 x 126 keeps about 1 in 14). The evaluation protocols feed 150 to
1500 points, so both of their runners (``VDRunner`` for a torch model, ``OnnxRunner`` for a
model file) *splat* the depth into the model grid instead: each input pixel lands on its
nearest model pixel, the nearest depth wins on collisions. RGB is letterboxed bicubically, as
the node and training resize it.
"""

import numpy as np

from vd_ros.core.pde import PDEConfig, positional_depth_encoding
from vd_ros.core.preprocess import Letterbox, letterbox_params


def splat_depth(depth_m: np.ndarray, letterbox: Letterbox) -> np.ndarray:
    """Move every valid depth pixel to its nearest pixel of the model input grid.

    Args:
        depth_m: (h, w) depth in metres at camera resolution, 0 = invalid.
        letterbox: Camera -> model letterbox.

    Returns:
        float32 (H, W) depth in the model grid; 0 where no input pixel landed; on collisions
        the nearest depth wins (it occludes the others).
    """
    rows, cols = np.nonzero(depth_m > 0.0)
    # Pixel centres: camera u -> model x = (u + 0.5) * scale - 0.5 + pad.
    model_rows = np.rint((rows + 0.5) * letterbox.scale - 0.5 + letterbox.pad_top).astype(int)
    model_cols = np.rint((cols + 0.5) * letterbox.scale - 0.5 + letterbox.pad_left).astype(int)
    out_h, out_w = letterbox.out_size
    model_rows = np.clip(model_rows, 0, out_h - 1)
    model_cols = np.clip(model_cols, 0, out_w - 1)
    splat = np.full((out_h, out_w), np.inf, np.float32)
    np.minimum.at(splat, (model_rows, model_cols), depth_m[rows, cols].astype(np.float32))
    splat[~np.isfinite(splat)] = 0.0
    return splat


def splatted_inputs(rgb: np.ndarray, depth_m: np.ndarray, input_size: tuple,
                    pde: PDEConfig) -> tuple[np.ndarray, np.ndarray, Letterbox]:
    """Return the model's ``rgb`` and ``pde`` inputs of a frame, its depth splatted.

    Args:
        rgb: (h, w, 3) uint8 RGB.
        depth_m: (h, w) input depth in metres (sparse or dense), 0 = invalid.
        input_size: (H, W) of the model input.
        pde: Parameters of the positional depth encoding.

    Returns:
        ``(rgb_in, pde, letterbox)``: float32 (1, 3, H, W) in [0, 1], float32 (1, C, H, W),
        and the letterbox that maps outputs back to the camera.
    """
    letterbox = letterbox_params(rgb.shape[:2], input_size)
    rgb_model = letterbox.apply(rgb, 'cubic')  # (H, W, 3)
    rgb_in = rgb_model.transpose(2, 0, 1)[None] / np.float32(255.0)  # (1, 3, H, W)
    encoded = positional_depth_encoding(splat_depth(depth_m, letterbox), pde)[None]
    return rgb_in, encoded, letterbox  # encoded: (1, C, H, W)
