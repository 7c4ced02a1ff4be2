"""The Vanishing Depth RGB-D encoder: frozen RGB ViT + depth adapter (+ pretraining decoder).

Inputs follow the model contract (docs/model-contract.md): ``rgb`` in [0, 1], RGB order, with
the mean/std normalisation done inside the module, and ``pde`` from
``positional_depth_encoding``. H and W must be multiples of the patch size.
"""

from dataclasses import dataclass
import logging
from typing import Any, Dict, List, Mapping, Optional, Sequence

import torch
from torch import nn

from training.models.depth_adapter import DepthAdapter
from training.models.encoder import create_rgb_encoder, FrozenRGBEncoder
from training.models.fpn_decoder import DEFAULT_BINS_M, FPNDecoder
from vd_ros.core.pde import PDEConfig

_logger = logging.getLogger(__name__)

MODEL_DEFAULTS = {
    'encoder': 'vit_small_patch14_dinov2',
    'pretrained': False,
    'weights_path': None,
    'rgb_trainable': False,
    'img_size': [224, 224],
    'timm_kwargs': {},
    'pde': PDEConfig().to_dict(),
    'fusion_blocks': None,
    'se_reduction': 16,
    'decoder': {'enabled': True, 'channels': None, 'output': 'single',
                'bins_m': list(DEFAULT_BINS_M)},
}


@dataclass
class VDFeatures:
    """RGB-D encoder outputs.

    Attributes:
        maps: Four fused token maps (B, D, h, w), h = H / p, shallowest fusion block first.
        last: Final-LayerNorm'd patch tokens of the last block as a map (B, D, h, w); the dense
            (pose) features.
        cls: Final-LayerNorm'd CLS token (B, D); for scene classification.
    """

    maps: List[torch.Tensor]
    last: torch.Tensor
    cls: torch.Tensor


class VanishingDepth(nn.Module):
    """Frozen RGB encoder, trainable depth adapter and optional FPN depth decoder.

    Attributes:
        encoder: The frozen RGB ViT.
        adapter: The depth adapter.
        decoder: The pretraining decoder, or None after ``drop_decoder``.
        pde_config: Parameters of the expected positional depth encoding.
        encoder_name: timm name of the RGB encoder.
        patch_size: Patch size p.
        feature_dim: Token width D.
        mean: RGB mean used inside ``forward`` (tuple of 3 floats).
        std: RGB std used inside ``forward``.
    """

    def __init__(self, encoder: FrozenRGBEncoder, pde_config: PDEConfig = PDEConfig(),
                 fusion_blocks: Optional[Sequence[int]] = None, se_reduction: int = 16,
                 decoder: bool = True, decoder_channels: Optional[Sequence[int]] = None,
                 decoder_bins_m: Optional[Sequence[float]] = None,
                 encoder_name: str = ''):
        """Assemble the model.

        Args:
            encoder: Frozen RGB encoder (see ``create_rgb_encoder``).
            pde_config: PDE parameters; ``channels`` sets the adapter's input width.
            fusion_blocks: Four fusion block indices, None for the default spread.
            se_reduction: SE bottleneck reduction.
            decoder: Build the FPN decoder.
            decoder_channels: Decoder widths, None to scale (256, 128, 64, 32) by D / 384.
            decoder_bins_m: None for the single ReLU depth channel, else the bin sizes.
            encoder_name: timm name, kept for export metadata.
        """
        super().__init__()
        self.encoder = encoder
        self.pde_config = pde_config
        self.encoder_name = encoder_name
        self.patch_size = encoder.patch_size
        self.feature_dim = encoder.embed_dim
        self.mean = encoder.mean
        self.std = encoder.std
        self.register_buffer('rgb_mean', torch.tensor(self.mean).view(1, 3, 1, 1),
                             persistent=False)
        self.register_buffer('rgb_std', torch.tensor(self.std).view(1, 3, 1, 1),
                             persistent=False)
        self.adapter = DepthAdapter(encoder.vit, pde_config.channels, fusion_blocks,
                                    se_reduction)
        self.decoder = FPNDecoder(self.feature_dim, decoder_channels, decoder_bins_m) \
            if decoder else None

    def _check_inputs(self, rgb: torch.Tensor, pde: torch.Tensor) -> None:
        """Raise ValueError for inputs the model cannot take."""
        if rgb.dim() != 4 or rgb.shape[1] != 3:
            raise ValueError(f'rgb must be (B, 3, H, W), got {tuple(rgb.shape)}')
        expected = (rgb.shape[0], self.pde_config.channels, *rgb.shape[2:])
        if tuple(pde.shape) != expected:
            raise ValueError(f'pde must be {expected} to match rgb, got {tuple(pde.shape)}')
        height, width = rgb.shape[-2:]
        if height % self.patch_size or width % self.patch_size:
            raise ValueError(
                f'input size {height}x{width} is not a multiple of the patch size '
                f'{self.patch_size}')

    def encode(self, rgb: torch.Tensor, pde: torch.Tensor) -> VDFeatures:
        """Run the RGB-D encoder.

        Args:
            rgb: RGB in [0, 1], (B, 3, H, W).
            pde: Positional depth encoding (B, C, H, W).

        Returns:
            Fused maps, final map and CLS token.
        """
        self._check_inputs(rgb, pde)
        image = (rgb - self.rgb_mean) / self.rgb_std  # (B, 3, H, W)
        rgb_tokens = self.encoder.patch_tokens(image, self.adapter.fusion_blocks)
        out = self.adapter(pde.to(image.dtype), rgb_tokens)
        return VDFeatures(out.maps, out.last, out.cls)

    def forward(self, rgb: torch.Tensor, pde: torch.Tensor) -> Dict[str, Any]:
        """Encode and, while the decoder exists, predict depth.

        Args:
            rgb: RGB in [0, 1], (B, 3, H, W).
            pde: Positional depth encoding (B, C, H, W).

        Returns:
            ``features``: (B, D, H / p, W / p); ``depths`` (only with a decoder): metric depth
            [(B, 1, H, W), (B, 1, H // 2, W // 2), (B, 1, H // 4, W // 4),
            (B, 1, H // 8, W // 8)].
        """
        features = self.encode(rgb, pde)
        out = {'features': features.last}
        if self.decoder is not None:
            out['depths'] = self.decoder(features.maps, tuple(rgb.shape[-2:]))
        return out

    def drop_decoder(self) -> None:
        """Remove the pretraining decoder; encoder and adapter keep working."""
        self.decoder = None

    def trainable_parameters(self) -> List[nn.Parameter]:
        """Return the parameters that require grad (adapter and decoder)."""
        return [p for p in self.parameters() if p.requires_grad]


def _merge(defaults: Mapping, values: Mapping, where: str) -> Dict[str, Any]:
    """Merge ``values`` into ``defaults`` (nested), raising on unknown keys."""
    unknown = set(values) - set(defaults)
    if unknown:
        raise ValueError(f'unknown {where} keys {sorted(unknown)}; known: {sorted(defaults)}')
    merged = dict(defaults)
    for key, value in values.items():
        is_section = isinstance(defaults[key], Mapping) and key not in ('timm_kwargs', 'pde')
        merged[key] = _merge(defaults[key], value, f'{where}.{key}') if is_section else value
    return merged


def resolve_model_config(cfg: Mapping) -> Dict[str, Any]:
    """Return the full model config as plain python, defaults filled in.

    Args:
        cfg: The ``model:`` section (dict or OmegaConf DictConfig), or a whole config holding
            one.
    """
    if hasattr(cfg, '_metadata'):  # an OmegaConf node; import lazily, it is optional here
        from omegaconf import OmegaConf
        cfg = OmegaConf.to_container(cfg, resolve=True)
    if 'model' in cfg and 'encoder' not in cfg:
        cfg = cfg['model']
    return _merge(MODEL_DEFAULTS, cfg, 'model')


def build_model(cfg: Mapping) -> VanishingDepth:
    """Build ``VanishingDepth`` from the ``model:`` section of training/configs/default.yaml.

    Args:
        cfg: See ``resolve_model_config``; e.g. ``{'timm_kwargs': {'depth': 2, 'embed_dim':
            64, 'num_heads': 2}, 'img_size': [112, 112]}`` for a tiny test model.

    Returns:
        The model (resolved config in ``model.config`` for checkpoints and export metadata).
    """
    config = resolve_model_config(cfg)
    decoder = config['decoder']
    if decoder['output'] not in ('single', 'bins'):
        raise ValueError(f"model.decoder.output must be 'single' or 'bins', got "
                         f"{decoder['output']!r}")
    encoder = create_rgb_encoder(
        config['encoder'], pretrained=config['pretrained'], weights_path=config['weights_path'],
        img_size=config['img_size'], trainable=config['rgb_trainable'],
        **config['timm_kwargs'])
    model = VanishingDepth(
        encoder, PDEConfig.from_dict(config['pde']), fusion_blocks=config['fusion_blocks'],
        se_reduction=config['se_reduction'], decoder=decoder['enabled'],
        decoder_channels=decoder['channels'],
        decoder_bins_m=decoder['bins_m'] if decoder['output'] == 'bins' else None,
        encoder_name=config['encoder'])
    model.config = config
    _logger.info('built %s: %.1f M trainable / %.1f M total parameters', config['encoder'],
                 sum(p.numel() for p in model.trainable_parameters()) / 1e6,
                 sum(p.numel() for p in model.parameters()) / 1e6)
    return model
