"""Turn a collated RGB-D batch into the network input and the loss targets.

Training order per batch (paper.md section 4; runs on the training device, after the
DataLoader, so the GPU does the per-pixel work): the transform has already cropped, resized and
range-limited the depth (``training.data.transforms``), then here

    randomize_depth_distribution -> target (copy) -> corrupt_depth (input only)
    -> removal mask with a ratio from the noise shift (valid target pixels only)
    -> masked input depth -> positional depth encoding.

Validation uses the clean depth as target and input, no corruption, and masks at a fixed ratio
from a generator seeded by the sample's index, so the same batch always gets the same masks.
"""

from dataclasses import dataclass
from typing import Mapping, Optional

import numpy as np
import torch

from training.data.depth_randomization import corrupt_depth, randomize_depth_distribution
from training.data.masking import NoiseShift, sample_masks
from training.models import positional_depth_encoding
from vd_ros.core.pde import PDEConfig


@dataclass
class PretrainInputs:
    """One batch ready for the model and the loss.

    Attributes:
        rgb: RGB in [0, 1] (B, 3, H, W).
        pde: PDE of the masked, corrupted input depth (B, C, H, W).
        input_depth: The masked input depth (B, H, W), metres (for panels).
        target: Clean (randomised) target depth (B, H, W), metres, 0 = invalid.
        removed: Removal mask (B, H, W), True where depth was taken away.
        ratios: Drawn removal ratios (B,).
    """

    rgb: torch.Tensor
    pde: torch.Tensor
    input_depth: torch.Tensor
    target: torch.Tensor
    removed: torch.Tensor
    ratios: torch.Tensor


def step_seed(*counters: int) -> int:
    """Return a 63-bit seed mixed from integer counters (seed, rank, step, micro-step)."""
    return int(np.random.SeedSequence([int(c) for c in counters]).generate_state(
        2, np.uint32).astype(np.uint64).dot([1 << 31, 1]))


class PretrainBatchBuilder:
    """Depth randomisation, corruption, masking and PDE for a batch.

    Attributes:
        pde_config: Encoding parameters (the model's).
        noise_shift: The mask-ratio schedule (its state goes into checkpoints).
        depth_cfg: The ``depth`` config section (plain dict).
        masking_cfg: The ``masking`` config section (plain dict).
    """

    def __init__(self, pde_config: PDEConfig, noise_shift: NoiseShift,
                 depth_cfg: Mapping, masking_cfg: Mapping):
        """Store the parts.

        Args:
            pde_config: Encoding parameters.
            noise_shift: Mask-ratio schedule.
            depth_cfg: ``depth`` section: ``min_depth_m``, ``max_depth_m``,
                ``randomization`` (``range_jitter``, ``scale_range``), ``corruption``
                (``noise_m``, ``outlier_prob``, ``outlier_fraction``, ``clamp_fraction``).
            masking_cfg: ``masking`` section: ``perlin_prob``, ``perlin_scales``,
                ``block_max_fraction``, ``block_min_cells``.
        """
        self.pde_config = pde_config
        self.noise_shift = noise_shift
        self.depth_cfg = depth_cfg
        self.masking_cfg = masking_cfg

    def _masks(self, target: torch.Tensor, ratios: torch.Tensor,
               generator: torch.Generator) -> torch.Tensor:
        """Draw removal masks over the valid target pixels."""
        cfg = self.masking_cfg
        return sample_masks(target > 0, ratios, generator, perlin_prob=cfg['perlin_prob'],
                            perlin_scales=tuple(cfg['perlin_scales']),
                            block_max_fraction=cfg['block_max_fraction'],
                            block_min_cells=cfg['block_min_cells'])

    def _finish(self, rgb, corrupted, target, removed, ratios) -> PretrainInputs:
        """Mask the input depth and encode it."""
        input_depth = torch.where(removed, torch.zeros_like(corrupted), corrupted)  # (B, H, W)
        pde = positional_depth_encoding(input_depth, self.pde_config)  # (B, C, H, W)
        return PretrainInputs(rgb, pde, input_depth, target, removed, ratios)

    @staticmethod
    def _depth(batch: Mapping, device: torch.device):
        """Move RGB and depth to ``device``; depth (B, H, W) with invalid pixels at 0."""
        rgb = batch['rgb'].to(device, non_blocking=True)  # (B, 3, H, W)
        depth = batch['depth'].to(device, non_blocking=True)[:, 0]  # (B, H, W)
        valid = batch['valid'].to(device, non_blocking=True)[:, 0]  # (B, H, W)
        return rgb, torch.where(valid, depth, torch.zeros_like(depth))

    def train_inputs(self, batch: Mapping, step: int, generator: torch.Generator,
                     device: Optional[torch.device] = None) -> PretrainInputs:
        """Build the training inputs of ``batch`` at optimiser step ``step``.

        Args:
            batch: Collated samples with ``rgb`` (B, 3, H, W), ``depth`` and ``valid``
                (B, 1, H, W).
            step: Optimiser step (drives the noise shift).
            generator: Random source for every draw of this batch.
            device: Where to compute (default: the generator's device).

        Returns:
            The inputs.
        """
        device = device or generator.device
        cfg = self.depth_cfg
        rgb, depth = self._depth(batch, device)
        limits = {'min_depth_m': cfg['min_depth_m'], 'max_depth_m': cfg['max_depth_m']}
        randomization, corruption = cfg['randomization'], cfg['corruption']
        target = randomize_depth_distribution(
            depth, generator, range_jitter=randomization['range_jitter'],
            scale_range=tuple(randomization['scale_range']), **limits)  # (B, H, W)
        corrupted = corrupt_depth(
            target, generator, noise_m=corruption['noise_m'],
            outlier_prob=corruption['outlier_prob'],
            outlier_fraction=corruption['outlier_fraction'],
            clamp_fraction=corruption['clamp_fraction'], **limits)  # (B, H, W)
        ratios = self.noise_shift.sample(step, depth.shape[0], generator, device)  # (B,)
        removed = self._masks(target, ratios, generator)
        return self._finish(rgb, corrupted, target, removed, ratios)

    def eval_inputs(self, batch: Mapping, ratio: float, seed: int,
                    device: torch.device) -> PretrainInputs:
        """Build validation inputs: clean depth, masks at ``ratio`` seeded by ``seed``.

        Args:
            batch: Collated samples (see ``train_inputs``).
            ratio: Removal ratio of every sample.
            seed: Seed of the mask generator (e.g. from the batch index and the ratio).
            device: Where to compute.

        Returns:
            The inputs.
        """
        rgb, depth = self._depth(batch, device)
        generator = torch.Generator(device=device).manual_seed(seed)
        ratios = torch.full((depth.shape[0],), float(ratio), device=device)  # (B,)
        removed = self._masks(depth, ratios, generator)
        return self._finish(rgb, depth, depth, removed, ratios)
