"""Multi-scale balanced scale-invariant log loss (paper.md section 4).

Per level l and pixel set S (per sample)::

    g_i  = log p_i - log d_i
    L(S) = alpha * sqrt(mean(g^2) - lam * mean(g)^2)

S_removed = valid pixels the mask removed (depth to predict), S_kept = valid pixels still given
(depth to reconstruct); valid means target >= 1 mm and prediction >= 1 mm.
L_l = (L(S_removed) + L(S_kept)) / 2, or the one that exists. The loss is computed per sample
(scale invariance is a per-image property), averaged over the samples that have a term, then
over the levels that have one. Targets and masks are nearest-downsampled to each level.
"""

from dataclasses import dataclass
from typing import List, Optional

import torch

from training.data.masking import multiscale


class NonFiniteLossError(FloatingPointError):
    """Raised when the loss is NaN or Inf; the caller decides to skip the batch or stop."""


@dataclass
class SILogOutput:
    """Loss and its parts.

    Attributes:
        loss: Scalar to backpropagate.
        removed: Mean removed-set term over samples and levels (detached; NaN if none).
        kept: Mean kept-set term (detached; NaN if none).
    """

    loss: torch.Tensor
    removed: torch.Tensor
    kept: torch.Tensor


def silog_per_sample(pred: torch.Tensor, target: torch.Tensor, select: torch.Tensor,
                     alpha: float = 10.0, lam: float = 0.85, eps: float = 1e-12,
                     min_depth_m: float = 1e-3):
    """Scale-invariant log error of each sample over the selected pixels.

    Args:
        pred: Predicted depth (B, h, w), metres.
        target: Target depth (B, h, w), metres.
        select: Pixels to use (B, h, w), bool; must already exclude depths < ``min_depth_m``.
        alpha: Output scale.
        lam: Variance weight lambda (1 makes the loss fully scale invariant).
        eps: Added inside the square root (and its root subtracted outside): sqrt has an
            infinite slope at 0, this keeps the gradient finite and the loss exactly 0 for a
            perfect prediction.
        min_depth_m: Clamp before the log so excluded pixels never produce log(0).

    Returns:
        (loss (B,), has_pixels (B,) bool); samples without pixels have loss 0.
    """
    weight = select.to(pred.dtype)  # (B, h, w)
    g = (torch.log(pred.clamp(min=min_depth_m)) - torch.log(target.clamp(min=min_depth_m)))
    g = g * weight  # (B, h, w)
    count = weight.sum(dim=(1, 2))  # (B,)
    safe = count.clamp(min=1.0)
    mean_sq = (g * g).sum(dim=(1, 2)) / safe  # (B,)
    mean = g.sum(dim=(1, 2)) / safe  # (B,)
    variance = (mean_sq - lam * mean * mean).clamp(min=0.0)  # (B,)
    loss = alpha * (torch.sqrt(variance + eps) - eps ** 0.5)  # (B,), 0 at a perfect fit
    has = count > 0
    return torch.where(has, loss, torch.zeros_like(loss)), has


def _check_finite(depths: List[torch.Tensor]) -> None:
    """Raise ``NonFiniteLossError`` when a prediction holds NaN or Inf.

    Needed because the validity test ``pred >= min_depth_m`` is False for NaN: NaN pixels
    would silently leave the pixel sets (an all-NaN batch would even look empty).
    """
    finite = torch.stack([torch.isfinite(d).all() for d in depths])  # (levels,)
    if not bool(finite.all()):
        counts = [(k, int(d.isnan().sum()), int(d.isinf().sum()))
                  for k, d in enumerate(depths) if not bool(finite[k])]
        raise NonFiniteLossError(
            'non-finite depth predictions (level, nan count, inf count): ' + str(counts))


class MultiScaleSILogLoss(torch.nn.Module):
    """Balanced (removed / kept) scale-invariant log loss over the decoder levels.

    Attributes:
        alpha: SILog scale.
        lam: SILog variance weight.
        min_depth_m: Pixels with target or prediction below this are excluded.
        removed_weight: Weight of the removed-set term when both terms exist (0.5).
    """

    def __init__(self, alpha: float = 10.0, lam: float = 0.85, min_depth_m: float = 1e-3,
                 removed_weight: float = 0.5, eps: float = 1e-12):
        """Store the parameters (paper defaults).

        Args:
            alpha: SILog scale.
            lam: SILog variance weight.
            min_depth_m: Validity threshold for target and prediction.
            removed_weight: Weight of the removed-set term; the kept term gets the rest.
            eps: Stabiliser inside the square root (see ``silog_per_sample``).
        """
        super().__init__()
        self.alpha = alpha
        self.lam = lam
        self.min_depth_m = min_depth_m
        self.removed_weight = removed_weight
        self.eps = eps

    def _sets(self, pred, target, removed):
        """Return the SILog terms of the removed and the kept pixel sets."""
        valid = (target >= self.min_depth_m) & (pred.detach() >= self.min_depth_m)
        args = {'alpha': self.alpha, 'lam': self.lam, 'eps': self.eps,
                'min_depth_m': self.min_depth_m}
        return (silog_per_sample(pred, target, valid & removed, **args),
                silog_per_sample(pred, target, valid & ~removed, **args))

    def forward(self, depths: List[torch.Tensor], target: torch.Tensor,
                removed: torch.Tensor) -> Optional[SILogOutput]:
        """Compute the loss.

        Args:
            depths: Predictions, finest first: [(B, 1, H, W), (B, 1, H // 2, W // 2), ...].
            target: Clean target depth (B, 1, H, W) or (B, H, W), metres, 0 = invalid.
            removed: Mask (B, H, W), True where the input depth was removed.

        Returns:
            The loss, or None when no level of no sample has a valid pixel (skip the batch).

        Raises:
            NonFiniteLossError: A prediction or the loss is NaN or Inf.
        """
        if target.dim() == 4:
            target = target[:, 0]  # (B, H, W)
        _check_finite(depths)
        targets = multiscale(target.float(), len(depths))
        masks = multiscale(removed, len(depths))
        levels, removed_terms, kept_terms = [], [], []
        for pred, level_target, level_mask in zip(depths, targets, masks):
            pred = pred[:, 0].float()  # (B, h, w); float32 even under bf16 autocast
            if pred.shape != level_target.shape:
                raise ValueError(f'prediction {tuple(pred.shape)} does not match the target '
                                 f'level {tuple(level_target.shape)}')
            (rem, has_rem), (kept, has_kept) = self._sets(pred, level_target, level_mask)
            w_rem = torch.where(has_kept, torch.full_like(rem, self.removed_weight),
                                torch.ones_like(rem)) * has_rem  # (B,)
            w_kept = torch.where(has_rem, torch.full_like(kept, 1.0 - self.removed_weight),
                                 torch.ones_like(kept)) * has_kept  # (B,)
            has_any = has_rem | has_kept
            if has_any.any():
                per_sample = w_rem * rem + w_kept * kept  # (B,)
                levels.append(per_sample.sum() / has_any.sum())
            removed_terms.append(rem[has_rem].detach())
            kept_terms.append(kept[has_kept].detach())
        if not levels:
            return None
        loss = torch.stack(levels).mean()
        if not torch.isfinite(loss):
            raise NonFiniteLossError(
                f'scale-invariant loss is {loss.item()} (levels: '
                f'{[round(v.item(), 4) for v in levels]})')
        return SILogOutput(loss, torch.cat(removed_terms).mean(), torch.cat(kept_terms).mean())
