"""Where the descriptor head's cost goes: multiply-accumulates per part, and its eager time.

Builds an untrained ``DescriptorHead`` of the given widths on the CPU preset's shapes (four
192-wide 9 x 12 token maps, a 126 x 168 RGB input), counts the multiply-accumulates of every
convolution with forward hooks (the interpolations, BatchNorms and the normalisation are not
counted), and times the eager forward (``no_grad``, median of ``--calls``).

Usage: python -m bench.descriptor_head_macs [--dim 128] [--channels 64] [--stem-channels 32]
    [--calls 30] [--threads 1]
"""

import argparse
import time

import numpy as np
import torch

from training.models.descriptor_head import DescriptorHead

FEATURE_DIM = 192
PATCH_GRID = (9, 12)
INPUT_SIZE = (126, 168)


def convolution_macs(head: DescriptorHead, maps: list, rgb: torch.Tensor) -> dict:
    """Return (multiply-accumulates, output shape) of each convolution of one forward, by name."""
    macs = {}

    def record(name):
        def hook(module, _inputs, output):
            per_output = module.kernel_size[0] * module.kernel_size[1] * \
                module.in_channels // module.groups
            macs[name] = (output.numel() * per_output, tuple(output.shape[1:]))
        return hook

    handles = [module.register_forward_hook(record(name))
               for name, module in head.named_modules() if isinstance(module, torch.nn.Conv2d)]
    with torch.no_grad():
        head(maps, rgb)
    for handle in handles:
        handle.remove()
    return macs


def main() -> None:
    """Print the MACs per part, the parameters and the eager time of one head."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--dim', type=int, default=128)
    parser.add_argument('--channels', type=int, default=64)
    parser.add_argument('--stem-channels', type=int, default=32)
    parser.add_argument('--calls', type=int, default=30)
    parser.add_argument('--threads', type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    head = DescriptorHead(FEATURE_DIM, dim=args.dim, channels=args.channels,
                          stem_channels=args.stem_channels).eval()
    maps = [torch.randn(1, FEATURE_DIM, *PATCH_GRID) for _ in range(4)]
    rgb = torch.rand(1, 3, *INPUT_SIZE)
    macs = convolution_macs(head, maps, rgb)
    total = sum(count for count, _ in macs.values())
    times = []
    with torch.no_grad():
        for _ in range(args.calls + 3):
            start = time.perf_counter()
            head(maps, rgb)
            times.append(1e3 * (time.perf_counter() - start))
    print(f'head {head.config}: {sum(p.numel() for p in head.parameters()) / 1e6:.3f} M '
          f'parameters, {total / 1e6:.1f} M MACs, eager {np.median(times[3:]):.2f} ms '
          f'(median of {args.calls}, {args.threads} thread(s))')
    print('| convolution | output (C, H, W) | M MACs | share |\n|---|---|---:|---:|')
    for name, (count, shape) in macs.items():
        print(f'| {name} | {shape} | {count / 1e6:.1f} | {count / total:.1%} |')


if __name__ == '__main__':
    main()
