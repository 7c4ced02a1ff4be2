"""Several RGB-D sources as one dataset, drawn with per-source weights.

``MixedDataset`` indexes its sources one after another (like ``ConcatDataset``, so an
evaluation loop can visit every frame once); ``sampler`` returns a
``WeightedRandomSampler`` that draws source ``s`` with probability ``w_s / sum(w)`` and a frame
uniformly inside it, whatever the source sizes (the paper draws each dataset with equal
probability). ``collate_common_keys`` batches samples of different sources by keeping the keys
all of them have (e.g. ``K`` or ``label`` exist only for some datasets).
"""

import bisect
import collections

import torch
from torch.utils.data import Dataset
from torch.utils.data import default_collate
from torch.utils.data import WeightedRandomSampler


class MixedDataset(Dataset):
    """Concatenation of RGB-D sources with sampling weights.

    Attributes:
        sources: The datasets.
        weights: Sampling weight of each source (not normalised).
        names: A name per source (used in logs).
    """

    def __init__(self, sources, weights=None, names=None):
        """Check and store the sources.

        Args:
            sources: Non-empty sequence of datasets, each non-empty.
            weights: Non-negative weight per source with a positive sum; default all 1.
            names: Name per source; default ``source`` attribute or class name.

        Raises:
            ValueError: Empty sources, an empty source, or bad weights.
        """
        self.sources = list(sources)
        if not self.sources:
            raise ValueError('MixedDataset needs at least one source')
        self.weights = [1.0] * len(self.sources) if weights is None else [float(w) for w in
                                                                          weights]
        self.names = list(names) if names is not None else [
            getattr(s, 'source', type(s).__name__) for s in self.sources]
        if len(self.weights) != len(self.sources) or len(self.names) != len(self.sources):
            raise ValueError(f'{len(self.sources)} sources but {len(self.weights)} weights and '
                             f'{len(self.names)} names')
        if any(not w >= 0.0 for w in self.weights) or sum(self.weights) <= 0.0:
            raise ValueError(f'source weights must be >= 0 with a positive sum, got '
                             f'{self.weights}')
        sizes = [len(s) for s in self.sources]
        empty = [n for n, size in zip(self.names, sizes) if size == 0]
        if empty:
            raise ValueError(f'empty sources: {empty}')
        self.offsets = [0]
        for size in sizes:
            self.offsets.append(self.offsets[-1] + size)

    def __len__(self) -> int:
        """Return the total number of frames of all sources."""
        return self.offsets[-1]

    def locate(self, index: int) -> tuple:
        """Return ``(source_index, frame_index)`` of a global index."""
        if not 0 <= index < len(self):
            raise IndexError(f'index {index} out of range for {len(self)} frames')
        source = bisect.bisect_right(self.offsets, index) - 1
        return source, index - self.offsets[source]

    def __getitem__(self, index: int) -> dict:
        """Return frame ``index`` of the concatenation (transformed by its source)."""
        source, local = self.locate(index)
        return self.sources[source][local]

    def sample_weights(self) -> torch.Tensor:
        """Return the per-frame drawing probability, shape (len,), summing to 1."""
        total = sum(self.weights)
        parts = [torch.full((len(s),), w / total / len(s), dtype=torch.float64)
                 for s, w in zip(self.sources, self.weights)]
        return torch.cat(parts)  # (N,)

    def sampler(self, num_samples: int, generator: torch.Generator = None):
        """Build a sampler drawing ``num_samples`` frames (with replacement) by source weight.

        Args:
            num_samples: Frames per epoch.
            generator: Optional ``torch.Generator`` for reproducible draws.

        Returns:
            A ``torch.utils.data.WeightedRandomSampler``.
        """
        return WeightedRandomSampler(self.sample_weights(), int(num_samples), replacement=True,
                                     generator=generator)

    @property
    def skipped(self) -> collections.Counter:
        """Return the skipped-frame counts of all sources in this process (path -> count)."""
        total = collections.Counter()
        for source in self.sources:
            total.update(getattr(source, 'skipped', {}))
        return total


def collate_common_keys(batch: list) -> dict:
    """Batch samples with ``default_collate`` keeping only the keys every sample has.

    Args:
        batch: List of sample dicts.

    Returns:
        The collated dict (tensors stacked, strings as lists).
    """
    keys = set(batch[0]).intersection(*batch[1:])
    return default_collate([{k: sample[k] for k in keys} for sample in batch])
