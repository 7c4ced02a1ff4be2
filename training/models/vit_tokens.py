"""Step a timm ViT block by block, for both the RGB stream and the depth adapter.

Fusion needs the tokens between blocks, which ``forward_features`` hides. These helpers repeat
timm's own embedding and block calls for the two ViT families the paper uses:
``VisionTransformer`` (DINOv2, with or without register tokens) and ``Eva`` (EVA-02, whose
blocks take a rotary position embedding).
"""

from typing import List, Optional, Tuple

from timm.models.eva import Eva
from timm.models.vision_transformer import VisionTransformer
import torch
from torch import nn

SUPPORTED_VITS = (VisionTransformer, Eva)


def check_supported(vit: nn.Module) -> None:
    """Raise if ``vit`` is not a ViT family these helpers can step through.

    Args:
        vit: A timm model.

    Raises:
        TypeError: For other architectures (Swin, ConvNeXt, ...).
    """
    if not isinstance(vit, SUPPORTED_VITS):
        raise TypeError(
            f'{type(vit).__name__} is not supported: the depth adapter needs a timm '
            'VisionTransformer (DINOv2, ...) or Eva (EVA-02, ...)')


def patch_size(vit: nn.Module) -> int:
    """Return the (square) patch size of a timm ViT."""
    size = vit.patch_embed.patch_size
    if size[0] != size[1]:
        raise ValueError(f'only square patches are supported, got {tuple(size)}')
    return int(size[0])


def embed_tokens(
        vit: nn.Module, image: torch.Tensor
) -> Tuple[torch.Tensor, Tuple[int, int], Optional[torch.Tensor]]:
    """Patch-embed an image and add prefix tokens and position embeddings.

    Args:
        vit: A supported timm ViT.
        image: Input (B, C_in, H, W); H and W multiples of the patch size.

    Returns:
        tokens (B, P + h * w, D) with P = ``vit.num_prefix_tokens``, the patch grid (h, w) and
        the rotary embedding the blocks need (None for ViTs without RoPE).
    """
    grid = tuple(vit.patch_embed.dynamic_feat_size(image.shape[-2:]))
    tokens = vit.patch_embed(image)  # (B, h, w, D) dynamic size, else (B, h * w, D)
    if isinstance(vit, Eva):
        tokens, rope = vit._pos_embed(tokens)  # (B, P + h * w, D)
    else:
        tokens, rope = vit.patch_drop(vit._pos_embed(tokens)), None  # (B, P + h * w, D)
    return vit.norm_pre(tokens), grid, rope


def run_block(
        vit: nn.Module, index: int, tokens: torch.Tensor, rope: Optional[torch.Tensor]
) -> torch.Tensor:
    """Run block ``index`` of ``vit`` on ``tokens`` (B, N, D) the way timm does."""
    block = vit.blocks[index]
    if isinstance(vit, Eva):
        if getattr(vit, 'rope_mixed', False) and rope is not None:
            rope = rope[index]
        return block(tokens, rope=rope)
    return block(tokens)


def tokens_to_map(patch_tokens: torch.Tensor, grid: Tuple[int, int]) -> torch.Tensor:
    """Reshape patch tokens (B, h * w, D) to a feature map (B, D, h, w)."""
    batch, _, dim = patch_tokens.shape
    return patch_tokens.transpose(1, 2).reshape(batch, dim, *grid)  # (B, D, h, w)


def stream_patch_tokens(
        vit: nn.Module, image: torch.Tensor, blocks: List[int]) -> List[torch.Tensor]:
    """Run ``vit`` up to the last of ``blocks`` and collect the patch tokens after each.

    Args:
        vit: A supported timm ViT.
        image: Input (B, C_in, H, W).
        blocks: Block indices (0-based, non-decreasing).

    Returns:
        One (B, h * w, D) tensor per entry of ``blocks`` (prefix tokens dropped).
    """
    tokens, _, rope = embed_tokens(vit, image)
    collected = {}
    for index in range(max(blocks) + 1):
        tokens = run_block(vit, index, tokens, rope)
        if index in blocks:
            collected[index] = tokens[:, vit.num_prefix_tokens:]  # (B, h * w, D)
    return [collected[index] for index in blocks]
