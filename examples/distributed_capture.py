"""Activation capture with PyTorch's own data-parallel tools: one shard per process.

Launch with ``torchrun`` (one process per core or machine; on several machines give
``--nnodes``, ``--node-rank`` and ``--rdzv-endpoint`` as usual)::

    torchrun --standalone --nproc-per-node 2 examples/distributed_capture.py \\
        runs/demo/model.safetensors --data embedded --threshold minmax --out runs/shards

Each process captures the contiguous shard ``rank / world_size`` of the split.  Thresholds
that need statistics of the whole split (``minmax``, ``mean``, ``eric``) are fitted in a
first pass whose per-kernel sums, minima and maxima are combined with
``torch.distributed.all_reduce``; every process then binarises its own images and writes
``shard-<rank>.npz``.  Rank 0 merges the shards into ``codes-<split>.npz`` (the file
``cnn2logic extract`` writes) and writes the thresholds next to it.  Without ``torchrun``
the script runs as a single process (world size 1).

A user's own CNN: add ``--factory package.module:function [--factory-kwargs JSON]``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from cnn2logic.model import file_digest, load_model
from cnn2logic.data import iter_batches, open_split
from cnn2logic.units import (RunningStats, capture_shard, merge_shards, save_thresholds,
                             shard_range, stream_statistics)


def global_thresholds(model, layer: str, source: str, split: str, size: int | None,
                      rank: int, world: int, method: str, reduce: str, batch_size: int):
    """Fit ``method`` over the whole split: local running statistics, then all_reduce."""
    info = open_split(source, split, size)
    start, stop = shard_range(info.total, rank, world)
    local = stream_statistics(model, layer,
                              iter_batches(source, split, start, stop, batch_size), reduce=reduce)
    if world > 1:
        k = len(local.total)
        sums = torch.from_numpy(np.concatenate([[local.count], local.total, local.squares]))
        low, high = torch.from_numpy(local.low.copy()), torch.from_numpy(local.high.copy())
        dist.all_reduce(sums, op=dist.ReduceOp.SUM)
        dist.all_reduce(low, op=dist.ReduceOp.MIN)
        dist.all_reduce(high, op=dist.ReduceOp.MAX)
        arr = sums.numpy()
        local = RunningStats(int(arr[0]), arr[1:1 + k], arr[1 + k:], low.numpy(), high.numpy())
    return local.fit(method)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("--factory", default=None)
    ap.add_argument("--factory-kwargs", default=None)
    ap.add_argument("--data", default="embedded")
    ap.add_argument("--split", choices=("train", "test"), default="train")
    ap.add_argument("--size", type=int, default=None)
    ap.add_argument("--layer", default="pool")
    ap.add_argument("--reduce", default="max")
    ap.add_argument("--threshold", default="half", choices=("half", "minmax", "mean", "eric"))
    ap.add_argument("--batch-size", type=int, default=500)
    ap.add_argument("--out", required=True, help="directory for the shards and merged codes")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    distributed = "WORLD_SIZE" in os.environ and int(os.environ["WORLD_SIZE"]) > 1
    if distributed:
        dist.init_process_group("gloo")
        rank, world = dist.get_rank(), dist.get_world_size()
    else:
        rank, world = 0, 1
    model = load_model(args.model, factory=args.factory, factory_kwargs=args.factory_kwargs)
    thresholds = None
    if args.threshold != "half":
        thresholds = global_thresholds(model, args.layer, args.data, args.split, args.size,
                                       rank, world, args.threshold, args.reduce,
                                       args.batch_size)
    shard = capture_shard(model, args.layer, source=args.data, split=args.split,
                          size=args.size, shard=(rank, world), reduce=args.reduce,
                          threshold="half" if thresholds is None else None,
                          thresholds=thresholds, batch_size=args.batch_size,
                          model_digest=file_digest(args.model))
    out = Path(args.out)
    shard.save(out / f"shard-{rank}.npz")
    if distributed:
        dist.barrier()
    if rank == 0:
        codes, fitted = merge_shards([out / f"shard-{r}.npz" for r in range(world)])
        codes.save(out / f"codes-{args.split}.npz")
        save_thresholds(fitted, out / "thresholds.json", layer=args.layer, reduce=args.reduce,
                        names=codes.names)
        print(f"rank 0: merged {world} shards into {out / f'codes-{args.split}.npz'} "
              f"({len(codes)} images x {len(codes.names)} units, thresholds {fitted.method})")
    if distributed:
        dist.barrier()
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
