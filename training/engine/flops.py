"""FLOPs of a training step, measured, and model FLOPs utilisation (nanoGPT-style MFU).

The FLOP count is measured, not estimated from the parameter count: one micro-step (forward,
loss and backward) on the real input shape runs under ``torch.utils.flop_counter.
FlopCounterMode``, which counts matrix multiplications, convolutions and attention
(2 FLOPs per multiply-add; element-wise work, norms and activations are not counted, as in
the usual MFU definitions). What this measures for Vanishing Depth:

- the frozen RGB ViT runs forward only, under ``torch.no_grad`` and only up to the last
  fusion block (``FrozenRGBEncoder.patch_tokens``): no backward, no weight gradients;
- the depth adapter and the decoder run forward and backward: grads w.r.t. activations and
  weights (about 2x their forward), except the input gradient of the PDE patch embedding,
  which autograd skips because the PDE needs no grad.

So one step costs F_rgb + ~3 F_trainable instead of the 3 F_total of the "6 N" rule.
MFU = measured FLOPs per optimiser step x optimiser steps per second / peak (per GPU), with
the dense bf16 tensor-core peak of ``PEAK_FLOPS`` (or ``train.peak_tflops``).
"""

from typing import Callable, Optional

import torch
from torch.utils.flop_counter import FlopCounterMode

# Dense (no sparsity) bf16 tensor-core peaks, FLOP/s; substrings of torch.cuda.get_device_name.
PEAK_FLOPS = {
    'H200': 989e12,
    'H100': 989e12,  # SXM; the PCIe card peaks at 756e12: set train.peak_tflops=756
    'A100': 312e12,
}


def measure_flops(fn: Callable[[], object]) -> int:
    """Run ``fn`` once under ``FlopCounterMode`` and return the FLOPs it executed."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def peak_flops(device: torch.device, override_tflops: Optional[float] = None
               ) -> Optional[float]:
    """Return the peak FLOP/s of ``device`` for MFU, or None where MFU is not reported.

    Args:
        device: The training device.
        override_tflops: A peak in TFLOP/s that wins over the table.

    Returns:
        FLOP/s, or None on CPU and on unknown GPUs without an override.
    """
    if override_tflops:
        return float(override_tflops) * 1e12
    if device.type != 'cuda':
        return None
    name = torch.cuda.get_device_name(device)
    for key, value in PEAK_FLOPS.items():
        if key in name:
            return value
    return None


def model_flops_utilization(flops_per_step: float, steps_per_second: float,
                            peak: float) -> float:
    """Return the achieved share of one device's peak (0..1).

    With DDP every rank does the same work, so the per-rank ratio is the cluster's.

    Args:
        flops_per_step: FLOPs of one optimiser step on one rank (all micro-steps).
        steps_per_second: Optimiser steps per second.
        peak: Peak FLOP/s of one device.
    """
    return flops_per_step * steps_per_second / peak
