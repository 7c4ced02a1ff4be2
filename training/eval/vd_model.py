"""The Vanishing Depth model as an evaluation method: loading, inference, completion, features.

A model is built from the config and either left at its seeded random initialisation (the RGB
ViT too: no pretrained weights are downloaded) or loaded from a checkpoint that must match the
config (``training.checkpoint.model``); ``provenance`` says which,
and every results table repeats it. Frames are letterboxed into the model input with
``vd_ros.core.preprocess`` and their depth is *splatted* into the model grid
(``encode_frame(splat=True)``), not resized with nearest neighbour, which would drop most of
the 150-1500 input points when downscaling.
"""

import logging
import os
from typing import Mapping

import numpy as np
import torch

from training.checkpoint.model import build_checked_model
from training.eval.completion_protocol import CompletionMethod
from training.eval.frames import RGBDFrame
from training.models import VanishingDepth
from training.models.completion_head import CompletionHead, depth_uncertainty
from training.models.descriptor_head import DescriptorHead
from training.models.pde import decode_depth
from vd_ros.core.depth_alignment import align_depth, ALIGNMENTS
from vd_ros.core.preprocess import encode_frame, Letterbox

_logger = logging.getLogger(__name__)


def describe_architecture(model: VanishingDepth) -> str:
    """Return the encoder name with its timm overrides, e.g. 'vit_small_patch14_dinov2'."""
    overrides = model.config.get('timm_kwargs') or {}
    if not overrides:
        return model.encoder_name
    return model.encoder_name + ' ' + ', '.join(f'{k}={v}' for k, v in overrides.items())


def load_vd_model(model_cfg: Mapping, checkpoint: str | None, label: str | None = None,
                  seed: int = 0) -> tuple[VanishingDepth, str]:
    """Build the model and load a checked checkpoint, or keep the seeded random init.

    Loading goes through ``training.checkpoint.model.build_checked_model``: the checkpoint's
    model config, state dict keys and shapes must match ``model_cfg``.

    Args:
        model_cfg: The ``model:`` config section (plain dict).
        checkpoint: Path of the checkpoint, or None for random initialisation.
        label: What the checkpoint is (e.g. 'smoke', 'real run'), shown in the provenance.
        seed: Torch seed before building (fixes the random initialisation).

    Returns:
        (model in eval mode, provenance string for the results tables).

    Raises:
        FileNotFoundError: If the checkpoint does not exist.
        CheckpointMismatchError: If it does not fit the configured model.
    """
    model, loaded = build_checked_model(model_cfg, checkpoint, seed)
    if loaded is None:
        return model, (f'random init (no checkpoint, seed {seed}; '
                       f'{describe_architecture(model)}; RGB ViT random as well, no pretrained '
                       'weights)')
    details = ', '.join(part for part in (
        label, f'step {loaded.step}' if loaded.step is not None else None,
        describe_architecture(model)) if part)
    return model, f'checkpoint {os.path.basename(checkpoint)} ({details})'


class VDRunner:
    """Runs a ``VanishingDepth`` model on camera frames.

    Attributes:
        model: The model (eval mode).
        input_size: (H, W) model input, multiples of the patch size.
        device: Torch device.
        completion_head: Completion head on the model (``completed_depth``), or None.
    """

    def __init__(self, model: VanishingDepth, input_size: tuple[int, int],
                 device: str | torch.device = 'cpu',
                 completion_head: CompletionHead | None = None):
        """Wrap a model.

        Args:
            model: The model.
            input_size: (H, W) model input; use the camera aspect ratio (e.g. 168 x 224 or
                336 x 448 for 480 x 640) so that dense features need no padding.
            device: Where to run it.
            completion_head: Optional trained completion head (needs the decoder).

        Raises:
            ValueError: If the input size is not a multiple of the patch size.
        """
        if any(size % model.patch_size for size in input_size):
            raise ValueError(f'input size {tuple(input_size)} is not a multiple of the patch '
                             f'size {model.patch_size}')
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.input_size = tuple(int(size) for size in input_size)
        self.completion_head = completion_head.to(self.device).eval() \
            if completion_head is not None else None

    def model_inputs(self, rgb: np.ndarray,
                     depth_m: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, Letterbox]:
        """Letterbox and encode a frame: (rgb (1, 3, H, W) in [0, 1], pde, letterbox)."""
        rgb_in, pde, letterbox = encode_frame(rgb, depth_m, self.input_size,
                                              self.model.pde_config, splat=True)
        return (torch.from_numpy(rgb_in).to(self.device), torch.from_numpy(pde).to(self.device),
                letterbox)

    @torch.inference_mode()
    def run(self, rgb: np.ndarray, depth_m: np.ndarray) -> tuple[dict, Letterbox]:
        """Run the model on one frame.

        Args:
            rgb: uint8 (h, w, 3) RGB.
            depth_m: (h, w) input depth in metres (sparse or dense), 0 = invalid.

        Returns:
            (outputs, letterbox): ``features`` (D, H / p, W / p) and, with a decoder,
            ``depth`` (H, W) metres in the model grid, and with a completion head
            ``completed_depth`` (H, W) and, with its uncertainty branch, ``depth_uncertainty``
            (H, W) metres (0 on input pixels), as numpy float32.
        """
        rgb_in, pde, letterbox = self.model_inputs(rgb, depth_m)
        features = self.model.encode(rgb_in, pde)
        result = {'features': features.last[0].float().cpu().numpy()}  # (D, h, w)
        if self.model.decoder is not None:
            depth = self.model.decoder(features.maps, self.input_size)[0]  # (1, 1, H, W)
            result['depth'] = depth[0, 0].float().cpu().numpy()  # (H, W)
            if self.completion_head is not None:
                head = self.completion_head
                completed, log_scale = head.complete(rgb_in, pde, depth, features.maps[-1])
                result['completed_depth'] = completed[0, 0].float().cpu().numpy()  # (H, W)
                if log_scale is not None:
                    valid = decode_depth(pde, head.pde_config)[1]  # (1, 1, H, W)
                    result['depth_uncertainty'] = depth_uncertainty(
                        completed, log_scale, valid)[0, 0].float().cpu().numpy()  # (H, W)
        return result, letterbox

    def completion_method(self, fit_shift: bool = False,
                          alignment: str = 'local') -> CompletionMethod:
        """Return a completion method: model depth aligned to the sparse input.

        The full-resolution prediction is mapped back to the camera and aligned to the input
        points with ``vd_ros.core.depth_alignment.align_depth``, as the node does: a least
        squares scale (optionally shift), then for ``'local'`` the interpolated ratio of input
        to aligned depth; input pixels keep their measured value. Pixels whose aligned
        prediction is not positive are set to 0, which the metrics clip to their minimum depth
        (counted as large errors).

        Args:
            fit_shift: Also fit a shift.
            alignment: ``'local'`` or ``'global'``.

        Raises:
            ValueError: For an unknown ``alignment``.
        """
        if alignment not in ALIGNMENTS:
            raise ValueError(f'alignment must be one of {ALIGNMENTS}, got {alignment!r}')

        def complete(frame: RGBDFrame, sparse_m: np.ndarray) -> np.ndarray:
            outputs, letterbox = self.run(frame.rgb, sparse_m)
            if 'depth' not in outputs:
                raise ValueError('the model has no depth decoder; it cannot complete depth')
            predicted = letterbox.restore(outputs['depth'], 'linear')  # (h, w)
            completed, scale, shift = align_depth(predicted, sparse_m, fit_shift, alignment)
            _logger.debug('%s: aligned with scale %.4g shift %.4g', frame.name, scale, shift)
            return np.nan_to_num(completed, nan=0.0)
        return complete

    def head_completion_method(self, alignment: str | None = None) -> CompletionMethod:
        """Return a completion method: the completion head's metric depth.

        ``completed_depth`` is mapped back to the camera and the input pixels keep their
        measured value, as the node does with a contract-v2 model; with ``alignment='local'``
        it is then locally aligned to the input at camera resolution (``align_depth``), which
        restores detail the model grid cannot hold.

        Args:
            alignment: None or ``'local'``.

        Raises:
            ValueError: Without a completion head, or for another ``alignment``.
        """
        if self.completion_head is None:
            raise ValueError('the runner has no completion head')
        if alignment not in (None, 'local'):
            raise ValueError(f"alignment must be None or 'local', got {alignment!r}")

        def complete(frame: RGBDFrame, sparse_m: np.ndarray) -> np.ndarray:
            outputs, letterbox = self.run(frame.rgb, sparse_m)
            completed = letterbox.restore(outputs['completed_depth'], 'linear')  # (h, w)
            if alignment is None:
                return np.where(sparse_m > 0.0, sparse_m, completed).astype(np.float32)
            aligned, _, _ = align_depth(completed, sparse_m, False, alignment)
            return np.nan_to_num(aligned, nan=0.0)
        return complete

    @torch.inference_mode()
    def dense_descriptors(self, frame: RGBDFrame, head: DescriptorHead) -> np.ndarray:
        """Return the descriptor head's unit descriptors (dim, 4h, 4w) of a frame.

        Raises:
            ValueError: If the letterbox pads the frame (see ``dense_features``).
        """
        rgb_in, pde, letterbox = self.model_inputs(frame.rgb, frame.depth_m)
        if letterbox.pad_top or letterbox.pad_left:
            raise ValueError(f'input size {self.input_size} pads a {letterbox.in_size} frame; '
                             'use the camera aspect ratio for dense features')
        head = head.to(self.device).eval()
        descriptors = head(self.model.encode(rgb_in, pde).maps, rgb_in)  # (1, dim, 4h, 4w)
        return descriptors[0].float().cpu().numpy()

    def dense_features(self, frame: RGBDFrame) -> np.ndarray:
        """Return the dense features (D, h, w) of a frame with its full measured depth.

        Raises:
            ValueError: If the letterbox pads the frame (input size of another aspect ratio),
                which would shift the patch centres.
        """
        outputs, letterbox = self.run(frame.rgb, frame.depth_m)
        if letterbox.pad_top or letterbox.pad_left:
            raise ValueError(f'input size {self.input_size} pads a {letterbox.in_size} frame; '
                             'use the camera aspect ratio for dense features')
        return outputs['features']
