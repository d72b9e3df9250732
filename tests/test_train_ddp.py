"""Data parallel: two CPU processes (gloo) each stepping on half of a batch end with the
parameters of one process stepping on the whole batch, and the samplers deal each step's
batch out so that the ranks' halves are exactly that whole batch."""
import os
import socket

import torch
import torch.multiprocessing as mp

from fastalex import models
from fastalex.train import data, distributed, loop

BATCH = 4


def _batch():
    g = torch.Generator().manual_seed(1)
    return torch.randn(BATCH, 3, 227, 227, generator=g) * 50, torch.tensor([1, 4, 7, 2])


def _model():
    # Paper AlexNet (its smallest input is 227) without dropout: dropout masks drawn per rank
    # cannot equal the masks one process draws for the whole batch.
    torch.manual_seed(0)
    return models.alexnet("paper", num_classes=8, dropout=0.0)


def _sgd(model):
    return torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)


def _worker(rank, world, port, out):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    ctx = distributed.setup("cpu")
    try:
        if rank == 1:
            torch.manual_seed(123)  # DDP must broadcast rank 0's initial parameters
            model = models.alexnet("paper", num_classes=8, dropout=0.0)
        else:
            model = _model()
        ddp = distributed.wrap(model, ctx)
        x, y = _batch()
        # Rank r's share of a step, as ShardSampler deals it: samples r, r + world, ...
        loop.train_step(ddp, _sgd(model), x[rank::world], y[rank::world])
        torch.save(model.state_dict(), f"{out}/rank{rank}.pt")
    finally:
        distributed.teardown(ctx)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_gloo_processes_equal_one_process_on_the_combined_batch(tmp_path):
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    model = _model()
    start = {k: v.clone() for k, v in model.state_dict().items()}
    x, y = _batch()
    loop.train_step(model, _sgd(model), x, y)
    single = model.state_dict()
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    for name, want in single.items():
        step = (want - start[name]).abs().max().item()
        assert step > 0, name
        for r, got in enumerate(ranks):
            # Same update within float32 summation-order noise: gradients are averaged over two
            # halves instead of summed over one batch, and the GEMMs block a batch of 4 and one
            # of 8 differently. Elements whose per-sample gradients cancel keep that noise in
            # absolute terms (one fc6 bias element: 6e-8 on an update of 3e-5, 6e-4 of the
            # tensor's largest step), so the bound is 1% of the largest step; what a DDP fault
            # gives (no averaging, a rank's gradients missing, rank 1's own initial weights)
            # is of the order of the step itself.
            torch.testing.assert_close(got[name] - start[name], want - start[name], rtol=1e-4, atol=1e-2 * step,
                                       msg=lambda m: f"rank {r}, {name}: {m}")


def test_shard_sampler_ranks_make_up_the_single_process_batches():
    n, world, per_rank = 23, 2, 3
    single = data.ShardSampler(n, 0, 1, shuffle=True, seed=5)
    shards = [data.ShardSampler(n, r, world, shuffle=True, seed=5) for r in range(world)]
    for epoch in (0, 1):
        for s in [single, *shards]:
            s.set_epoch(epoch)
        order = list(single)
        assert sorted(order) == list(range(n))
        parts = [list(s) for s in shards]
        assert len(parts[0]) == len(parts[1]) == 12  # padded to equal counts: 23 -> 24
        for step in range(3):
            combined = sorted(sum((p[step * per_rank:(step + 1) * per_rank] for p in parts), []))
            assert combined == sorted(order[step * per_rank * world:(step + 1) * per_rank * world])
    shards[0].set_epoch(0)
    first = list(shards[0])
    assert first != parts[0]  # another epoch, another order
    shards[0].set_epoch(0, skip=5)
    assert list(shards[0]) == first[5:] and len(shards[0]) == len(first) - 5
    # Evaluation shards cover every sample once.
    ev = [data.ShardSampler(n, r, world, shuffle=False, pad=False) for r in range(world)]
    assert sorted(sum((list(s) for s in ev), [])) == list(range(n))
