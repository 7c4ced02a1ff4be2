"""The depth adapter: a trainable copy of the RGB ViT that reads the PDE and fuses RGB tokens.

paper.md section 3 and proposals 4-6: same architecture and initial weights as the RGB ViT,
a new C -> D patch embedding (truncated normal, std 0.02, zero bias), token-wise SE fusion of
the patch tokens after four blocks; prefix tokens (CLS, registers) of the depth branch pass
through unfused.
"""

import copy
from dataclasses import dataclass
import math
from typing import List, Optional, Sequence, Tuple

import torch
from torch import nn

from training.models import vit_tokens
from training.models.se_fusion import SEFusion


def default_fusion_blocks(num_blocks: int) -> Tuple[int, ...]:
    """Return the four fusion blocks, spread evenly over the ViT depth.

    ``ceil((i + 1) * N / 4) - 1`` for i = 0..3 gives {2, 5, 8, 11} for N = 12 and
    {5, 11, 17, 23} for N = 24; shallow test ViTs (N < 4) repeat blocks.

    Args:
        num_blocks: Number of transformer blocks N.
    """
    if num_blocks < 1:
        raise ValueError(f'a ViT needs at least one block, got {num_blocks}')
    return tuple(math.ceil((i + 1) * num_blocks / 4) - 1 for i in range(4))


@dataclass
class AdapterOutput:
    """What the depth adapter returns.

    Attributes:
        maps: Four fused token maps (B, D, h, w), shallowest fusion block first.
        last: Final-norm'd patch tokens of the depth branch as a map (B, D, h, w).
        cls: Final-norm'd CLS token (B, D); the mean of ``last`` for ViTs without CLS.
    """

    maps: List[torch.Tensor]
    last: torch.Tensor
    cls: torch.Tensor


class DepthAdapter(nn.Module):
    """Trainable depth ViT fused with a frozen RGB ViT.

    Attributes:
        vit: The depth-branch ViT (trainable copy of the RGB ViT, new patch embedding).
        fusion_blocks: The four block indices whose outputs are fused and returned.
        fusions: One ``SEFusion`` per distinct fusion block, in block order.
    """

    def __init__(self, rgb_vit: nn.Module, pde_channels: int = 32,
                 fusion_blocks: Optional[Sequence[int]] = None, se_reduction: int = 16):
        """Copy ``rgb_vit`` and give it a PDE patch embedding.

        Args:
            rgb_vit: The (pretrained) RGB ViT; it is deep-copied, not shared.
            pde_channels: Channels C of the positional depth encoding.
            fusion_blocks: Four non-decreasing block indices; ``default_fusion_blocks``
                when None.
            se_reduction: Reduction of the SE bottlenecks.
        """
        super().__init__()
        vit_tokens.check_supported(rgb_vit)
        self.vit = copy.deepcopy(rgb_vit)
        self.vit.requires_grad_(True)
        num_blocks = len(self.vit.blocks)
        blocks = tuple(fusion_blocks) if fusion_blocks is not None else \
            default_fusion_blocks(num_blocks)
        if len(blocks) != 4 or list(blocks) != sorted(blocks) or \
                not all(0 <= b < num_blocks for b in blocks):
            raise ValueError(
                f'fusion_blocks must be 4 sorted indices in [0, {num_blocks}), got {blocks}')
        self.fusion_blocks = blocks
        self._replace_patch_embedding(pde_channels)
        dim = int(self.vit.embed_dim)
        self.fusions = nn.ModuleList(
            SEFusion(dim, se_reduction) for _ in sorted(set(blocks)))

    def _replace_patch_embedding(self, channels: int) -> None:
        """Swap the RGB patch convolution for a freshly initialised C -> D one."""
        old = self.vit.patch_embed.proj
        if not isinstance(old, nn.Conv2d):
            raise TypeError(f'expected a Conv2d patch embedding, got {type(old).__name__}')
        new = nn.Conv2d(channels, old.out_channels, kernel_size=old.kernel_size,
                        stride=old.stride, padding=old.padding, bias=True)
        nn.init.trunc_normal_(new.weight, std=0.02)
        nn.init.zeros_(new.bias)
        self.vit.patch_embed.proj = new.to(old.weight.device)

    def forward(self, pde: torch.Tensor, rgb_tokens: List[torch.Tensor]) -> AdapterOutput:
        """Run the depth branch, fusing RGB patch tokens after each fusion block.

        Args:
            pde: Positional depth encoding (B, C, H, W).
            rgb_tokens: RGB patch tokens (B, h * w, D) after each of ``fusion_blocks``.

        Returns:
            The fused maps, the final-norm'd map and the CLS token.
        """
        vit = self.vit
        prefix = vit.num_prefix_tokens
        tokens, grid, rope = vit_tokens.embed_tokens(vit, pde)  # (B, P + h * w, D)
        distinct = sorted(set(self.fusion_blocks))
        fused = {}
        for index in range(len(vit.blocks)):
            tokens = vit_tokens.run_block(vit, index, tokens, rope)
            if index not in self.fusion_blocks:
                continue
            fusion = self.fusions[distinct.index(index)]
            patches = fusion(tokens[:, prefix:],
                             rgb_tokens[self.fusion_blocks.index(index)])  # (B, h * w, D)
            tokens = torch.cat([tokens[:, :prefix], patches], dim=1)  # (B, P + h * w, D)
            fused[index] = vit_tokens.tokens_to_map(patches, grid)  # (B, D, h, w)
        tokens = vit.norm(tokens)
        last = vit_tokens.tokens_to_map(tokens[:, prefix:], grid)  # (B, D, h, w)
        cls = tokens[:, 0] if vit.cls_token is not None else last.mean(dim=(2, 3))  # (B, D)
        return AdapterOutput([fused[b] for b in self.fusion_blocks], last, cls)
