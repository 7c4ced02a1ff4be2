"""Frames seen by a camera rolled about its optical axis: a validation of roll invariance.

A held-out range that hardly rolls cannot show how a matcher copes with a camera that does
(a handheld camera, a drone). Turning a frame's colour and depth images about the principal
point by an angle is what the camera would have seen rolled by that angle, exactly for a
pinhole with fx = fy, so its pose turns about the optical axis with it. Pixels turned in from
outside the image are black, with no depth.
"""

import dataclasses

import cv2
import numpy as np

from training.eval.frames import RGBDFrame


def rolled_frame(frame: RGBDFrame, degrees: float) -> RGBDFrame:
    """Return ``frame`` as its camera would see it rolled by ``degrees`` (OpenCV's sense).

    Raises:
        ValueError: For a frame without a pose, with lens distortion, or with fx != fy.
    """
    k = frame.intrinsics
    if frame.cam_to_world is None or k is None or len(k.distortion) or \
            not np.isclose(k.fx, k.fy, rtol=1e-6):
        raise ValueError(f'{frame.name}: rolling needs a pose and rectified intrinsics with '
                         f'fx = fy, got {k}')
    turn_px = cv2.getRotationMatrix2D((k.cx, k.cy), degrees, 1.0)  # p' = turn_px @ (p, 1)
    size = frame.rgb.shape[1::-1]
    rgb = cv2.warpAffine(frame.rgb, turn_px, size, flags=cv2.INTER_LINEAR)
    depth = cv2.warpAffine(frame.depth_m, turn_px, size, flags=cv2.INTER_NEAREST)
    turn = np.eye(4)
    turn[:2, :2] = turn_px[:, :2]  # camera point X' = turn @ X
    return dataclasses.replace(frame, rgb=rgb, depth_m=depth,
                               cam_to_world=frame.cam_to_world @ turn.T)


def rolled_sequences(sequences: dict, seed: int) -> dict:
    """Roll every frame of every sequence by its own angle, uniform over the circle.

    Args:
        sequences: Sequence name -> frames.
        seed: Seed of the angles (the same seed, the same angles).

    Returns:
        Sequence name -> rolled frames, in the same order.
    """
    rng = np.random.default_rng(seed)
    return {name: [rolled_frame(frame, rng.uniform(-180.0, 180.0)) for frame in frames]
            for name, frames in sequences.items()}
