"""Training on several processes: torch's DistributedDataParallel, launched by ``torchrun``.

``torchrun --nproc_per_node N -m anyner.train CONFIG`` (or ``anyner train CONFIG`` under
``torchrun``) sets ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK``; the trainer then joins the
process group (gloo on CPU, nccl on GPU), wraps its training forward in
``DistributedDataParallel``, and each rank takes every N-th example of each global batch (the
examples are drawn from the seeded generator by step and slot, so the union over ranks is the
batch a single process draws). The loss is scaled so that the averaged gradient equals the
single-process gradient of the whole batch: the weights match a single-process run with the same
``batch_size`` within float rounding (without dropout; with it, each rank draws its own masks).
Only rank 0 logs, shows progress, writes checkpoints and the final model; every rank resumes
from the same checkpoint.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class World:
    """This process's place among the training processes (one process: rank 0 of 1)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def active(self) -> bool:
        return self.size > 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    def mine(self, slots: Sequence[int]) -> list[int]:
        """This rank's share of a global batch's slots: every ``size``-th, from ``rank``."""
        return list(slots[self.rank :: self.size])

    def sum(self, value: torch.Tensor) -> torch.Tensor:
        """The sum of ``value`` over the ranks (no gradient flows through it)."""
        if not self.active:
            return value
        out = value.detach().clone()
        torch.distributed.all_reduce(out)
        return out

    def barrier(self) -> None:
        if self.active:
            torch.distributed.barrier()


def world_from_env(device: str) -> World:
    """The world ``torchrun`` describes in the environment; joins its process group when N > 1.

    Raises:
        ValueError: the environment names a world but torch cannot join it (no distributed
            support, or CUDA asked for with fewer GPUs than local ranks).
    """
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return World()
    rank, local = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    if not torch.distributed.is_available():
        raise ValueError("WORLD_SIZE > 1 but this torch build has no torch.distributed")
    cuda = device.startswith("cuda")
    if cuda and local >= torch.cuda.device_count():
        raise ValueError(
            f"local rank {local} needs GPU {local}; this machine has {torch.cuda.device_count()}"
        )
    if not torch.distributed.is_initialized():
        if cuda:
            torch.cuda.set_device(local)
        torch.distributed.init_process_group(backend="nccl" if cuda else "gloo")
    return World(rank, size, local)


class TrainForward(nn.Module):
    """The training forward as one module, so that DistributedDataParallel sees every parameter
    used: a bi-encoder's label encoder runs inside it (label subwords in), then the network."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(
        self,
        tensors: dict[str, torch.Tensor],
        label_ids: torch.Tensor | None = None,  # (L, T) the batch's distinct label texts (bi-encoders)
        label_mask: torch.Tensor | None = None,
        label_index: torch.Tensor | None = None,  # (B, C) which of them each row's labels are
        label_present: torch.Tensor | None = None,  # (B, C, 1) 1 for a real label
    ) -> torch.Tensor:
        if label_ids is not None:
            vectors = self.net.encode_labels(label_ids, label_mask)
            tensors = {**tensors, "label_vectors": vectors[label_index] * label_present.to(vectors.dtype)}
        return self.net(**tensors)


def wrap(forward: TrainForward, world: World, device: torch.device) -> nn.Module:
    """``forward`` in DistributedDataParallel when the world has several ranks, else as it is."""
    if not world.active:
        return forward
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    # find_unused_parameters: a checkpoint may hold weights its forward never uses (a BiLSTM a
    # bi-encoder builds but does not run, an encoder pooler)
    return DistributedDataParallel(forward, device_ids=ids, find_unused_parameters=True)


def shutdown(world: World) -> None:
    if world.active and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


__all__ = ["TrainForward", "World", "shutdown", "world_from_env", "wrap"]
