"""Data-parallel training under torchrun: torch.distributed with NCCL on GPUs and gloo on CPU,
one process per device, rank 0 writing logs and checkpoints."""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class Context:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1


def launched_world() -> int:
    """The world size torchrun set (1 outside torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def setup(device: str) -> Context:
    """Joins the process group torchrun describes (WORLD_SIZE, RANK, LOCAL_RANK, MASTER_*);
    a plain process gets a world of one. On CUDA each process takes the GPU of its local rank."""
    world = launched_world()
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = torch.device(device)
    if dev.type == "cuda":
        if dev.index is None:
            dev = torch.device("cuda", local_rank)
        torch.cuda.set_device(dev)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
    return Context(rank, world, local_rank, dev)


def wrap(model: torch.nn.Module, ctx: Context) -> torch.nn.Module:
    """DistributedDataParallel around `model` in a world of several processes (gradients are
    averaged across ranks in backward, so each rank's optimizer takes the same step); the model
    itself otherwise. The ranks start from rank 0's parameters (DDP broadcasts them)."""
    if not ctx.distributed:
        return model
    ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    return model.module if isinstance(model, torch.nn.parallel.DistributedDataParallel) else model


def all_reduce_sum(t: torch.Tensor, ctx: Context) -> torch.Tensor:
    """The sum of `t` over the ranks (`t` itself in a world of one). gloo reduces CPU tensors,
    NCCL device tensors."""
    if not ctx.distributed:
        return t
    work = t.to(ctx.device) if ctx.device.type == "cuda" else t.clone()
    dist.all_reduce(work)
    return work.to(t.device)


def broadcast_object(obj, ctx: Context):
    """Rank 0's `obj` on every rank."""
    if not ctx.distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier(ctx: Context):
    if ctx.distributed:
        dist.barrier()


def teardown(ctx: Context):
    if ctx.distributed and dist.is_initialized():
        dist.destroy_process_group()
