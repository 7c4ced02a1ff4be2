"""A reproducible, resumable stream of training samples.

Exact resume needs the data order *and* every augmentation draw to be a function of a counter,
not of process state that dies with a DataLoader worker. So:

- ``StreamSampler`` draws frame indices by source weight from ``torch.multinomial`` seeded with
  ``(seed, epoch)`` (``samples_per_epoch`` draws per epoch, with replacement, as the paper's
  "200,000 random draws per epoch"), yields ``(frame_index, sample_id)`` pairs where
  ``sample_id`` is the position in the global stream, gives rank ``r`` of ``W`` the entries
  ``r, r + W, r + 2W, ...`` (the ``DistributedSampler`` split) and starts at any position
  (``start``), which is the sampler state a checkpoint stores.
- ``SeededTransformDataset`` applies the training transform with a numpy generator seeded from
  ``(seed, sample_id)``, so a sample looks the same whichever worker, rank or run builds it.
"""

from typing import Iterator, Tuple

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from training.data.datasets import collate_common_keys


class StreamSampler(Sampler):
    """Endless weighted sampling of frame indices, sharded over ranks, resumable.

    Attributes:
        weights: Per-frame drawing probabilities (N,).
        samples_per_epoch: Draws per epoch (over all ranks).
        seed: Base seed.
        rank: This process's rank.
        world_size: Number of ranks.
        start: Position (in this rank's stream) of the first sample to yield.
    """

    def __init__(self, weights: torch.Tensor, samples_per_epoch: int, seed: int = 0,
                 rank: int = 0, world_size: int = 1, start: int = 0):
        """Store the parameters.

        Args:
            weights: Per-frame probabilities, e.g. ``MixedDataset.sample_weights()``.
            samples_per_epoch: Draws per epoch, a multiple of ``world_size``.
            seed: Base seed.
            rank: Rank of this process.
            world_size: Number of ranks.
            start: Samples of this rank's stream already consumed.

        Raises:
            ValueError: For inconsistent arguments.
        """
        if samples_per_epoch <= 0 or samples_per_epoch % world_size:
            raise ValueError(f'samples_per_epoch must be a positive multiple of world_size '
                             f'{world_size}, got {samples_per_epoch}')
        if not 0 <= rank < world_size or start < 0:
            raise ValueError(f'bad rank {rank} / world_size {world_size} / start {start}')
        self.weights = torch.as_tensor(weights, dtype=torch.float64)
        self.samples_per_epoch = int(samples_per_epoch)
        self.seed = int(seed)
        self.rank = int(rank)
        self.world_size = int(world_size)
        self.start = int(start)

    def epoch_indices(self, epoch: int) -> torch.Tensor:
        """Return the global draw of ``epoch`` (samples_per_epoch,) frame indices."""
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return torch.multinomial(self.weights, self.samples_per_epoch, replacement=True,
                                 generator=generator)

    def __iter__(self) -> Iterator[Tuple[int, int]]:
        """Yield ``(frame_index, sample_id)`` forever, from position ``start``."""
        per_rank = self.samples_per_epoch // self.world_size
        epoch, offset = divmod(self.start, per_rank)
        while True:
            indices = self.epoch_indices(epoch)[self.rank::self.world_size]  # (per_rank,)
            for position in range(offset, per_rank):
                sample_id = epoch * self.samples_per_epoch + position * self.world_size + \
                    self.rank
                yield int(indices[position]), sample_id
            epoch, offset = epoch + 1, 0

    def __len__(self) -> int:
        """Return the draws per epoch of this rank (the stream itself never ends)."""
        return self.samples_per_epoch // self.world_size


class SeededTransformDataset(Dataset):
    """Apply a random transform with a generator derived from the sample's stream position.

    Attributes:
        dataset: The untransformed dataset (e.g. ``build_dataset(cfg, transform=None)``).
        transform: ``transform(sample, rng)`` (``RGBDTransform``).
        seed: Base seed.
    """

    def __init__(self, dataset: Dataset, transform, seed: int = 0):
        """Store the parts.

        Args:
            dataset: Map-style dataset returning raw samples.
            transform: Callable taking ``(sample, numpy.random.Generator)``.
            seed: Base seed.
        """
        self.dataset = dataset
        self.transform = transform
        self.seed = int(seed)

    def __len__(self) -> int:
        """Return the number of frames of the wrapped dataset."""
        return len(self.dataset)

    def __getitem__(self, key: Tuple[int, int]) -> dict:
        """Return frame ``key[0]`` transformed with the generator of sample ``key[1]``."""
        index, sample_id = key
        rng = np.random.default_rng([self.seed, int(sample_id)])
        return self.transform(self.dataset[index], rng)


def stream_loader(dataset: Dataset, weights: torch.Tensor, transform, batch_size: int,
                  seed: int, samples_per_epoch: int, workers: int,
                  start: int = 0) -> DataLoader:
    """Return an endless loader of collated, seeded samples drawn by ``weights``.

    Args:
        dataset: Raw samples (``MixedDataset``).
        weights: (N,) drawing weight of every frame (0 = never drawn).
        transform: ``transform(sample, rng)``.
        batch_size: Samples per batch (the last incomplete batch of an epoch is dropped).
        seed: Seed of the draws and of each sample's transform.
        samples_per_epoch: Draws per epoch of the stream.
        workers: DataLoader worker processes (0 = in this process).
        start: Samples of the stream already consumed (a resume).
    """
    return DataLoader(SeededTransformDataset(dataset, transform, seed=seed),
                      batch_size=batch_size, collate_fn=collate_common_keys, drop_last=True,
                      sampler=StreamSampler(weights, samples_per_epoch, seed=seed, start=start),
                      num_workers=workers, persistent_workers=workers > 0)
