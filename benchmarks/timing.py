"""Timing: median and 20/80% quantiles of repeated runs, after warm-up.

CPU: wall clock (time.perf_counter) around each call, torch's intra-op threads as configured.
GPU: triton.testing.do_bench, which times with CUDA events and flushes the L2 cache between
repetitions."""
from __future__ import annotations

import statistics
import time

import torch


def quantiles(samples):
    if len(samples) == 1:
        return samples[0], samples[0], samples[0]
    q = statistics.quantiles(samples, n=10, method="inclusive")
    return statistics.median(samples), q[1], q[7]  # median, 20%, 80%


def time_cpu(fn, min_reps=5, min_time=0.3, warmup=2, max_reps=200):
    for _ in range(warmup):
        fn()
    samples = []
    start = time.perf_counter()
    while len(samples) < min_reps or (time.perf_counter() - start < min_time and len(samples) < max_reps):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return quantiles(samples)


def time_gpu(fn, warmup_ms=25, rep_ms=100):
    import triton.testing

    med, q20, q80 = triton.testing.do_bench(fn, warmup=warmup_ms, rep=rep_ms, quantiles=[0.5, 0.2, 0.8])
    return med / 1e3, q20 / 1e3, q80 / 1e3


def time_fn(fn, device, quick=False):
    with torch.no_grad():
        if device == "cuda":
            return time_gpu(fn, 10 if quick else 25, 30 if quick else 100)
        return time_cpu(fn, min_reps=3 if quick else 5, min_time=0.05 if quick else 0.3)
