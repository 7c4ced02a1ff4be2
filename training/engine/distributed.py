"""torchrun / torch.distributed set-up: no home-made distribution.

``torchrun`` sets ``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT``;
``init_distributed`` reads them, picks the local GPU and starts the process group (NCCL on
CUDA, Gloo on CPU). Without those variables it is a single process (rank 0 of 1).
"""

from dataclasses import dataclass
import logging
import os
from typing import Any, List

import torch
import torch.distributed as dist

_logger = logging.getLogger(__name__)


@dataclass
class DistInfo:
    """Where this process stands.

    Attributes:
        rank: Global rank.
        local_rank: Rank on this node (the GPU index).
        world_size: Number of processes.
        device: The device this process trains on.
    """

    rank: int
    local_rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """Return True on rank 0 (the one that logs, plots and writes checkpoints)."""
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        """Return True when a process group is running."""
        return self.world_size > 1


def choose_device(device: str) -> torch.device:
    """Return the device a setting names: ``auto`` (CUDA when available), ``cuda`` or ``cpu``.

    Raises:
        ValueError: Unknown device, or ``cuda`` requested without a GPU.
    """
    if device not in ('auto', 'cuda', 'cpu'):
        raise ValueError(f"device must be 'auto', 'cuda' or 'cpu', got {device!r}")
    if device == 'cuda' and not torch.cuda.is_available():
        raise ValueError('device=cuda but no CUDA device is available')
    use_cuda = device == 'cuda' or (device == 'auto' and torch.cuda.is_available())
    return torch.device('cuda' if use_cuda else 'cpu')


def init_distributed(device: str = 'auto') -> DistInfo:
    """Start the process group when launched by torchrun and choose the device.

    Args:
        device: ``auto`` (CUDA when available), ``cuda`` or ``cpu``.

    Returns:
        The process's ``DistInfo``.

    Raises:
        ValueError: Unknown device, or ``cuda`` requested without a GPU.
    """
    use_cuda = choose_device(device).type == 'cuda'
    world_size = int(os.environ.get('WORLD_SIZE', '1'))
    rank = int(os.environ.get('RANK', '0'))
    local_rank = int(os.environ.get('LOCAL_RANK', '0'))
    if use_cuda:
        torch.cuda.set_device(local_rank)
        target = torch.device('cuda', local_rank)
    else:
        target = torch.device('cpu')
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group(backend='nccl' if use_cuda else 'gloo',
                                device_id=target if use_cuda else None)
        _logger.info('process group: rank %d / %d (local %d) on %s', rank, world_size,
                     local_rank, target)
    return DistInfo(rank, local_rank, world_size, target)


def all_gather_objects(value: Any, info: DistInfo) -> List[Any]:
    """Return ``value`` of every rank (a one-element list without a process group)."""
    if not info.enabled:
        return [value]
    gathered = [None] * info.world_size
    dist.all_gather_object(gathered, value)
    return gathered


def all_reduce_mean(value: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Average a tensor over ranks (unchanged without a process group)."""
    if info.enabled:
        value = value.clone()
        dist.all_reduce(value, op=dist.ReduceOp.SUM)  # Gloo has no AVG
        value /= info.world_size
    return value


def barrier(info: DistInfo) -> None:
    """Wait for every rank (no-op without a process group)."""
    if info.enabled:
        dist.barrier()


def cleanup_distributed(info: DistInfo) -> None:
    """Destroy the process group if one was started."""
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()
