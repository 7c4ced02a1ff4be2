"""Vanishing Depth model parts (torch).

Public API::

    from training.models import build_model, VanishingDepth, positional_depth_encoding

    model = build_model(cfg.model)            # dict or OmegaConf, see configs/default.yaml
    pde = positional_depth_encoding(depth_m, model.pde_config)   # (B, H, W) -> (B, C, H, W)
    out = model(rgb, pde)                     # rgb (B, 3, H, W) in [0, 1], RGB order
    out['features']                           # (B, D, H / p, W / p), final LayerNorm applied
    out['depths']                             # [(B, 1, H, W), H // 2, H // 4, H // 8], metres
    feats = model.encode(rgb, pde)            # VDFeatures(maps=[4 x (B, D, h, w)], last, cls)
    model.drop_decoder()                      # forward then returns {'features'} only
    model.trainable_parameters()              # adapter (+ decoder) parameters
    model.mean, model.std, model.patch_size, model.feature_dim, model.pde_config,
    model.encoder_name, model.config          # export metadata

Parts: ``encoder.create_rgb_encoder`` (frozen timm ViT), ``depth_adapter.DepthAdapter``,
``se_fusion.SEFusion``, ``fpn_decoder.FPNDecoder``, ``vit_tokens`` (block-wise ViT stepping).
"""

from training.models.encoder import (  # noqa: F401
    create_rgb_encoder, FrozenRGBEncoder, PretrainedWeightsUnavailable)
from training.models.pde import positional_depth_encoding  # noqa: F401
from training.models.vanishing_depth import (  # noqa: F401
    build_model, resolve_model_config, VanishingDepth, VDFeatures)
