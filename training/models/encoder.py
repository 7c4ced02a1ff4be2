"""The frozen RGB encoder: any timm ViT by name, weights from the hub or a local file.

The RGB path is the pretrained model, unchanged and never trained (paper.md section 3): all
parameters have ``requires_grad=False`` and the module stays in eval mode even when a parent
calls ``.train()``, so dropout, drop-path and any norm statistics behave as at inference.

``trainable=True`` (config ``model.rgb_trainable``) is the one exception, for encoders without
pretrained weights: a frozen random ViT only passes random projections of the RGB patches to
the fusion, so the CPU preset trains it together with the adapter (measured in
docs/pretraining/cpu_preset.md). Never use it with pretrained weights: that is not the paper.
"""

import logging
import os
from typing import List, Optional, Sequence, Tuple

import timm
import torch
from torch import nn

from training.models import vit_tokens

_logger = logging.getLogger(__name__)


class PretrainedWeightsUnavailable(RuntimeError):
    """Raised when ``pretrained=True`` cannot fetch the weights (offline, no cache, ...)."""


class FrozenRGBEncoder(nn.Module):
    """A timm ViT that is frozen and kept in eval mode (unless built ``trainable``).

    Attributes:
        vit: The wrapped timm model (classifier removed).
        patch_size: Patch size p in pixels.
        embed_dim: Token width D.
        num_blocks: Number of transformer blocks.
        mean: RGB mean of the pretrained weights (pretrained config of the timm model).
        std: RGB std of the pretrained weights.
        trainable: The RGB ViT trains with the adapter (random-init encoders only).
    """

    def __init__(self, vit: nn.Module, trainable: bool = False):
        """Wrap and freeze ``vit``.

        Args:
            vit: A timm ``VisionTransformer`` or ``Eva``.
            trainable: Leave ``vit`` trainable instead (module docstring).
        """
        super().__init__()
        vit_tokens.check_supported(vit)
        self.vit = vit
        self.trainable = bool(trainable)
        self.vit.requires_grad_(self.trainable)
        self.patch_size = vit_tokens.patch_size(vit)
        self.embed_dim = int(vit.embed_dim)
        self.num_blocks = len(vit.blocks)
        config = getattr(vit, 'pretrained_cfg', None) or {}
        self.mean = tuple(float(v) for v in config.get('mean', timm.data.IMAGENET_DEFAULT_MEAN))
        self.std = tuple(float(v) for v in config.get('std', timm.data.IMAGENET_DEFAULT_STD))
        self.train(False)

    def train(self, mode: bool = True) -> 'FrozenRGBEncoder':
        """Ignore ``mode`` when frozen: the frozen encoder always runs as at inference."""
        return super().train(mode and self.trainable)

    def patch_tokens(self, image: torch.Tensor, blocks: Sequence[int]) -> List[torch.Tensor]:
        """Return the patch tokens (B, h * w, D) after each block in ``blocks``, without grad.

        Args:
            image: Normalised RGB (B, 3, H, W).
            blocks: Block indices (0-based).
        """
        with torch.set_grad_enabled(self.trainable and torch.is_grad_enabled()):
            return vit_tokens.stream_patch_tokens(self.vit, image, list(blocks))


def _load_local_weights(name: str, weights_path: str, timm_kwargs: dict) -> nn.Module:
    """Create ``name`` and load ``weights_path`` through timm's pretrained-file path.

    timm then applies the model's own checkpoint filter (original DINOv2/EVA-02 key layouts,
    position-embedding resampling to ``img_size``) and loads with ``weights_only=True`` or
    safetensors.
    """
    if not os.path.isfile(weights_path):
        raise FileNotFoundError(f'encoder weights_path {weights_path!r} does not exist')
    _logger.info('loading %s weights from %s', name, weights_path)
    return timm.create_model(
        name, pretrained=True, pretrained_cfg_overlay={'file': os.path.abspath(weights_path)},
        **timm_kwargs)


def _download_weights(name: str, timm_kwargs: dict) -> nn.Module:
    """Create ``name`` with timm's hub download; explain what to do when that fails."""
    try:
        return timm.create_model(name, pretrained=True, **timm_kwargs)
    except (OSError, RuntimeError) as err:
        raise PretrainedWeightsUnavailable(
            f'could not download pretrained weights for {name!r} ({type(err).__name__}: '
            f'{err}). On an offline machine download them elsewhere (e.g. the timm/{name} '
            'model.safetensors on the Hugging Face hub), copy the file here and set '
            'model.weights_path=/path/to/model.safetensors with model.pretrained=false'
        ) from err


def create_rgb_encoder(
        name: str = 'vit_small_patch14_dinov2',
        pretrained: bool = False,
        weights_path: Optional[str] = None,
        img_size: Optional[Tuple[int, int]] = None,
        trainable: bool = False,
        **timm_kwargs) -> FrozenRGBEncoder:
    """Create a frozen timm ViT.

    Args:
        name: timm model name, e.g. ``vit_small_patch14_dinov2``, ``vit_base_patch14_dinov2``,
            ``vit_large_patch14_dinov2``, ``vit_small_patch14_reg4_dinov2``,
            ``eva02_base_patch14_224.mim_in22k``.
        pretrained: Download the weights with timm (needs network or a filled hub cache).
        weights_path: Local .pth/.safetensors file with the weights; wins over ``pretrained``.
        img_size: (H, W) the position embedding is built for; other multiples of the patch
            size still work because ``dynamic_img_size`` defaults to True.
        trainable: Train the RGB ViT too (``FrozenRGBEncoder``; random-init encoders only).
        **timm_kwargs: Passed to ``timm.create_model`` (e.g. ``depth``, ``embed_dim``,
            ``num_heads`` for tiny test models).

    Returns:
        The frozen encoder.

    Raises:
        ValueError: Unknown model name.
        FileNotFoundError: ``weights_path`` does not exist.
        PretrainedWeightsUnavailable: ``pretrained=True`` and the download failed.
    """
    if not timm.is_model(name.split('.')[0]):
        raise ValueError(f'unknown timm model {name!r}')
    timm_kwargs = dict(timm_kwargs)
    timm_kwargs.setdefault('num_classes', 0)
    timm_kwargs.setdefault('dynamic_img_size', True)
    if img_size is not None:
        timm_kwargs['img_size'] = tuple(int(v) for v in img_size)
    if weights_path:
        vit = _load_local_weights(name, weights_path, timm_kwargs)
    elif pretrained:
        vit = _download_weights(name, timm_kwargs)
    else:
        _logger.warning(
            'RGB encoder %s has RANDOM weights (pretrained=false, no weights_path): fine for '
            'tests, useless for real training or export', name)
        vit = timm.create_model(name, pretrained=False, **timm_kwargs)
    if trainable and (weights_path or pretrained):
        _logger.warning('RGB encoder %s is pretrained AND trainable: this departs from the '
                        'paper (frozen RGB path)', name)
    return FrozenRGBEncoder(vit, trainable)
