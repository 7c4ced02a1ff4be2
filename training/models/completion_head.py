"""Depth-completion head on the frozen Vanishing Depth model (paper.md proposal 18).

Everything happens inside the graph, from the contract's two inputs: the measured depth is
decoded from ``pde`` (``decode_depth``, exact to ~1e-6 m); the decoder's relative depth gets
one global scale (the mean log ratio measured / predicted over the measured pixels); the log
ratio is filled between the measured pixels by push-pull (``push_pull_fill``), which gives the
locally aligned prediction, the in-graph twin of ``vd_ros.core.depth_alignment``'s ``local``
mode; the log of the measured depth is filled the same way (the classical fill). A small U-Net
reads these maps (relative to the sample's mean log depth, so it sees no absolute scale), the
support of the measurement at three scales, the colour image and the last fused token map. It
predicts, per pixel, a gate that mixes the two in log space (how much to trust the decoder's
shape over the fill) and a log residual on top. Its last convolution starts at zero weights,
so an untrained head returns the fill mixed with ``decoder_share`` of the locally aligned
prediction everywhere. The output is metric depth (B, 1, H, W) > 0, equal to the measurement
wherever one was given.
"""

from dataclasses import dataclass
import math
from typing import Any, Dict, List, Mapping, Optional

import torch
from torch import nn
import torch.nn.functional as F

from training.models.pde import decode_depth
from training.models.push_pull_fill import push_pull_fill
from vd_ros.core.pde import PDEConfig

HEAD_DEFAULTS = {
    'channels': [16, 24, 32],     # U-Net widths at H, H / 2, H / 4
    'feature_channels': 16,       # 1x1 projection of the last fused token map (0: not used)
    'support_levels': [1, 3, 5],  # push-pull levels whose support is an input (2, 8, 32 px)
    'decoder_share': 0.1,         # initial gate: share of the locally aligned prediction
    'max_log_residual': 2.0,      # the residual is clamped to +- this (factor e**2)
    'uncertainty': False,         # also predict a Laplace scale of the log depth error
    'initial_log_scale': -2.3,    # its value before training (e**-2.3: 10 % relative error)
    'uncertainty_channels': 8,    # width of the uncertainty branch's hidden layer
}
# The predicted log scale is clamped to this range (0.1 % .. 270 % relative error).
LOG_SCALE_RANGE = (-7.0, 1.0)
# Weights of an uncertainty branch: a head trained without one warm-starts without them.
UNCERTAINTY_PREFIX = 'uncertainty.'
_MIN_DEPTH_M = 1e-3
_RGB_MEAN, _RGB_STD = 0.45, 0.25


@dataclass
class CompletionMaps:
    """What the head computes before its network, all (B, 1, H, W) but ``scale``.

    Attributes:
        measured: Decoded measured depth in metres, 0 where invalid.
        valid: 1 where a measurement was given, else 0.
        log_scale: (B, 1, 1, 1) global log scale of the prediction (0 without measurement).
        aligned_log: Log of the globally scaled prediction.
        local_log: Log of the locally aligned prediction (the residual's base).
        fill_log: Log of the push-pull fill of the measured depth (``local_log`` for a sample
            without measurement).
        reference: (B, 1, 1, 1) mean log measured depth (of the aligned prediction without
            measurement): subtracted from every log input.
        support: Push-pull weights of the ``support_levels`` (B, 1, h_k, w_k).
    """

    measured: torch.Tensor
    valid: torch.Tensor
    log_scale: torch.Tensor
    aligned_log: torch.Tensor
    local_log: torch.Tensor
    fill_log: torch.Tensor
    reference: torch.Tensor
    support: List[torch.Tensor]


def _conv(in_channels: int, out_channels: int, stride: int = 1) -> nn.Sequential:
    """3x3 convolution + ReLU."""
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, stride, 1), nn.ReLU(inplace=True))


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of (B, 1, H, W) ``values`` over ``mask`` per sample, (B, 1, 1, 1); 0 when empty."""
    total = (values * mask).sum(dim=(2, 3), keepdim=True)
    return total / mask.sum(dim=(2, 3), keepdim=True).clamp_min(1.0)


class CompletionHead(nn.Module):
    """Completed metric depth from the contract inputs, the decoder depth and token features.

    Attributes:
        pde_config: Parameters of the PDE input (to decode it).
        config: The resolved head config (``HEAD_DEFAULTS`` keys).
    """

    def __init__(self, pde_config: PDEConfig, feature_dim: int, **config: Any):
        """Build the head.

        Args:
            pde_config: The model's PDE parameters.
            feature_dim: D of the fused token maps.
            **config: ``HEAD_DEFAULTS`` keys.

        Raises:
            ValueError: Unknown keys, or not three U-Net widths.
        """
        super().__init__()
        unknown = set(config) - set(HEAD_DEFAULTS)
        if unknown:
            raise ValueError(f'unknown completion head keys {sorted(unknown)}; known: '
                             f'{sorted(HEAD_DEFAULTS)}')
        self.config = {**HEAD_DEFAULTS, **config, 'feature_dim': int(feature_dim)}
        widths = [int(c) for c in self.config['channels']]
        if len(widths) != 3:
            raise ValueError(f'completion head channels must be 3 widths, got {widths}')
        self.pde_config = pde_config
        features = int(self.config['feature_channels'])
        inputs = 5 + len(self.config['support_levels']) + 3
        c0, c1, c2 = widths
        self.project = nn.Conv2d(feature_dim, features, 1) if features else None
        self.stem = nn.Sequential(_conv(inputs, c0), _conv(c0, c0))  # H
        self.down1 = nn.Sequential(_conv(c0, c1, 2), _conv(c1, c1))  # H / 2
        self.down2 = _conv(c1, c2, 2)  # H / 4
        self.bottom = _conv(c2 + features, c2)
        self.up1 = _conv(c2 + c1, c1)
        self.up0 = _conv(c1 + c0, c0)
        share = float(self.config['decoder_share'])
        if not 0.0 < share < 1.0:
            raise ValueError(f'completion head decoder_share must be in (0, 1), got {share}')
        self.residual = nn.Conv2d(c0, 2, 3, padding=1)  # (log residual, gate logit)
        nn.init.zeros_(self.residual.weight)
        with torch.no_grad():
            self.residual.bias.copy_(torch.tensor([0.0, math.log(share / (1.0 - share))]))
        self.uncertainty = None
        if self.config['uncertainty']:
            # Its own two layers on the (detached) last feature map and the two outputs, so
            # that it cannot change the depth; the last layer starts at zero weights.
            hidden = int(self.config['uncertainty_channels'])
            last = nn.Conv2d(hidden, 1, 3, padding=1)  # log Laplace scale
            nn.init.zeros_(last.weight)
            nn.init.constant_(last.bias, float(self.config['initial_log_scale']))
            self.uncertainty = nn.Sequential(_conv(c0 + 2, hidden), last)

    def uncertainty_only(self) -> List[nn.Parameter]:
        """Freeze every weight but the uncertainty branch's; return those.

        Raises:
            ValueError: The head has no uncertainty branch.
        """
        if self.uncertainty is None:
            raise ValueError('completion head has no uncertainty branch to train alone; set '
                             'completion.head.uncertainty=true')
        self.requires_grad_(False)
        self.uncertainty.requires_grad_(True)
        return list(self.uncertainty.parameters())

    def load_depth_weights(self, state: Mapping[str, torch.Tensor]) -> List[str]:
        """Load a head's weights; the uncertainty branch may be absent from ``state``.

        Returns:
            The names left at their initial values (the uncertainty branch of a head trained
            without one).

        Raises:
            RuntimeError: Any other missing or unexpected weight.
        """
        result = self.load_state_dict(state, strict=False)
        missing = [n for n in result.missing_keys if not n.startswith(UNCERTAINTY_PREFIX)]
        if result.unexpected_keys and all(n.startswith(UNCERTAINTY_PREFIX)
                                          for n in result.unexpected_keys):
            raise RuntimeError('the weights come from a head with an uncertainty branch and '
                               'this head has none: set completion.head.uncertainty=true to '
                               'keep it (the shipped model has one)')
        if missing or result.unexpected_keys:
            raise RuntimeError(f'completion head weights do not fit: missing {missing}, '
                               f'unexpected {list(result.unexpected_keys)}')
        return list(result.missing_keys)

    def maps(self, pde: torch.Tensor, depth: torch.Tensor) -> CompletionMaps:
        """Decode the measurement, align the prediction globally and locally, fill.

        Args:
            pde: (B, C, H, W) the model's PDE input.
            depth: (B, 1, H, W) the decoder's (relative) depth.
        """
        measured, valid = decode_depth(pde, self.pde_config)  # (B, 1, H, W) each
        measured_log = torch.log(measured.clamp_min(_MIN_DEPTH_M))
        predicted_log = torch.log(depth.float().clamp_min(_MIN_DEPTH_M))
        log_scale = _masked_mean(measured_log - predicted_log, valid)  # (B, 1, 1, 1)
        aligned_log = predicted_log + log_scale
        both, support = push_pull_fill(torch.cat([measured_log - aligned_log, measured_log], 1),
                                       valid)  # (B, 2, H, W)
        has_measurement = (valid.sum(dim=(2, 3), keepdim=True) > 0).float()  # (B, 1, 1, 1)
        reference = has_measurement * _masked_mean(measured_log, valid) + \
            (1.0 - has_measurement) * aligned_log.mean(dim=(2, 3), keepdim=True)
        levels = [support[min(k, len(support) - 1)] for k in self.config['support_levels']]
        local_log = aligned_log + both[:, 0:1]
        # Without any measurement there is nothing to fill: the fill falls back to the prediction.
        fill_log = has_measurement * both[:, 1:2] + (1.0 - has_measurement) * local_log
        return CompletionMaps(measured, valid, log_scale, aligned_log, local_log, fill_log,
                              reference, levels)

    def forward(self, rgb: torch.Tensor, pde: torch.Tensor, depth: torch.Tensor,
                features: torch.Tensor) -> torch.Tensor:
        """Return the completed depth (arguments and result as :meth:`complete`)."""
        return self.complete(rgb, pde, depth, features)[0]

    def complete(self, rgb: torch.Tensor, pde: torch.Tensor, depth: torch.Tensor,
                 features: torch.Tensor):
        """Return the completed depth and, with an uncertainty branch, its log scale.

        Args:
            rgb: (B, 3, H, W) RGB in [0, 1].
            pde: (B, C, H, W) the PDE input.
            depth: (B, 1, H, W) the decoder's depth.
            features: (B, D, h, w) the last fused token map (``VDFeatures.maps[-1]``).

        Returns:
            ``(depth, log_scale)``: (B, 1, H, W) metric depth > 0, the measured depth wherever
            it is valid; (B, 1, H, W) log of the Laplace scale b of the log depth error (the
            expected |log depth - log truth|) within ``LOG_SCALE_RANGE``, or None without an
            uncertainty branch.
        """
        parts = self.maps(pde, depth)
        size = tuple(rgb.shape[-2:])
        support = [F.interpolate(level, size=size, mode='bilinear', align_corners=False)
                   for level in parts.support]
        x = torch.cat([parts.local_log - parts.reference, parts.fill_log - parts.reference,
                       parts.aligned_log - parts.reference, parts.fill_log - parts.local_log,
                       parts.valid, *support, (rgb.float() - _RGB_MEAN) / _RGB_STD], 1)
        skip0 = self.stem(x)  # (B, c0, H, W)
        skip1 = self.down1(skip0)  # (B, c1, H / 2, W / 2)
        bottom = self.down2(skip1)  # (B, c2, H / 4, W / 4)
        if self.project is not None:
            projected = F.interpolate(self.project(features.float()), size=bottom.shape[-2:],
                                      mode='bilinear', align_corners=False)
            bottom = torch.cat([bottom, projected], 1)  # (B, c2 + f, H / 4, W / 4)
        bottom = self.bottom(bottom)
        up = F.interpolate(bottom, size=skip1.shape[-2:], mode='bilinear', align_corners=False)
        up = self.up1(torch.cat([up, skip1], 1))  # (B, c1, H / 2, W / 2)
        up = F.interpolate(up, size=size, mode='bilinear', align_corners=False)
        up = self.up0(torch.cat([up, skip0], 1))  # (B, c0, H, W)
        limit = float(self.config['max_log_residual'])
        out = self.residual(up)  # (B, 2, H, W)
        residual, gate = out[:, 0:1].clamp(-limit, limit), torch.sigmoid(out[:, 1:2])
        completed = torch.exp(parts.fill_log + gate * (parts.local_log - parts.fill_log) +
                              residual)
        log_scale = None
        if self.uncertainty is not None:
            cues = torch.cat([up, out], 1).detach()  # (B, c0 + 2, H, W)
            log_scale = self.uncertainty(cues).clamp(*LOG_SCALE_RANGE)  # (B, 1, H, W)
        return torch.where(parts.valid > 0, parts.measured, completed), log_scale


def depth_uncertainty(completed: torch.Tensor, log_scale: torch.Tensor,
                      valid: torch.Tensor) -> torch.Tensor:
    """Return the expected absolute depth error in metres: depth * b, 0 where measured.

    For a Laplace error of scale b on log depth, E|d - t| = d * E|1 - e**-x| ~ d * b for
    small b (first order), which is what the contract's ``depth_uncertainty`` carries.
    """
    return torch.where(valid > 0, torch.zeros_like(completed), completed * torch.exp(log_scale))


def build_completion_head(model: nn.Module, config: Optional[Mapping] = None) -> CompletionHead:
    """Build a head for ``model`` (a ``VanishingDepth``) from a config mapping.

    Args:
        model: Supplies ``pde_config`` and ``feature_dim``.
        config: ``HEAD_DEFAULTS`` keys (missing ones take the defaults); ``feature_dim`` (as
            stored by ``CompletionHead.config``) must match the model when present.

    Raises:
        ValueError: Unknown keys or a feature width that does not fit the model.
    """
    values: Dict[str, Any] = dict(config or {})
    stored = values.pop('feature_dim', None)
    if stored is not None and int(stored) != int(model.feature_dim):
        raise ValueError(f'completion head built for feature_dim {stored}, the model has '
                         f'{model.feature_dim}')
    return CompletionHead(model.pde_config, int(model.feature_dim), **values)
