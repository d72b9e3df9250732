"""The run's time allowance (`benchmarks/run.py --budget SECONDS`).

A budgeted run splits what is left of its allowance evenly over the dtypes still to run (a
dtype's *share*; time one leaves unused passes to the next) and takes each dtype in two passes
over its cases (the orders: run.priority_order):

1. the cheap providers (fastalex, fastalex in a CUDA graph, torch eager) of each case -- the
   layers, then the networks at their largest batch, then at the others -- while the share
   lasts; the cases left when it runs out are skipped and listed;
2. the expensive providers (torch.compile, TensorRT: a compilation each) -- the networks first
   -- each only when the share left covers its expected compilation time: the longest
   compilation of the same kind seen in this run, or a guess (COMPILE_GUESS_S) before one has
   been seen; otherwise its cell says "skipped: budget".

A hard stop at the end of the allowance (SIGALRM, armed by run.py) ends whatever still runs
(a compilation that took longer than expected); the rows finished so far are written.

Everything here takes its clock as an argument, so the tests drive it without timing anything.
"""
from __future__ import annotations

import math
import time

# First guesses of one compilation with cold caches on an H100, in seconds: GUESSES, not
# measurements (no GPU has run this benchmark), used only until the run has seen one of the
# same kind (the results' compile_s columns record what each took). max-autotune benchmarks
# every GEMM/conv choice, hence its cost.
COMPILE_GUESS_S = {
    ("torch_compile", "default", "layer"): 10.0,
    ("torch_compile", "max-autotune", "layer"): 60.0,
    ("torch_compile", "default", "alexnet.forward"): 30.0,
    ("torch_compile", "max-autotune", "alexnet.forward"): 150.0,
    ("torch_compile", "default", "googlenet.forward"): 90.0,
    ("torch_compile", "max-autotune", "googlenet.forward"): 360.0,
    ("tensorrt", "default", "alexnet.forward"): 90.0,
    ("tensorrt", "default", "googlenet.forward"): 180.0,
    ("torch_compile", "default", "googlenet_tv.forward"): 90.0,
    ("torch_compile", "max-autotune", "googlenet_tv.forward"): 360.0,
    ("tensorrt", "default", "googlenet_tv.forward"): 180.0,
}


class BudgetExceeded(BaseException):
    """Raised by the hard stop. A BaseException, so that the `except Exception` around every
    provider (and inside torch.compile) lets it through."""


def family(case_name, kind):
    """The estimate's key for a case: the network ("alexnet.forward") or "layer"."""
    return case_name.split(" ")[0] if kind == "network" else "layer"


class Budget:
    def __init__(self, seconds, start=None, clock=time.monotonic):
        self.clock = clock
        self.seconds = seconds
        self.start = clock() if start is None else start
        self.deadline = None if seconds is None else self.start + seconds
        self.share_deadline = self.deadline
        self.compiles = {}  # (provider, mode, family) -> longest compilation seen, seconds

    @property
    def limited(self):
        return self.deadline is not None

    def remaining(self):
        return math.inf if self.deadline is None else self.deadline - self.clock()

    def begin_share(self, parts_left):
        """Start the next share: what is left, split over `parts_left` parts (this one included)."""
        if self.deadline is None:
            return
        now = self.clock()
        self.share_deadline = now + max(0.0, self.deadline - now) / max(1, parts_left)

    def share_left(self):
        return math.inf if self.share_deadline is None else self.share_deadline - self.clock()

    def allows_case(self):
        return self.share_left() > 0

    def compile_estimate(self, provider, mode, fam):
        key = (provider, mode, fam)
        if key in self.compiles:
            return self.compiles[key]
        return COMPILE_GUESS_S.get(key, COMPILE_GUESS_S.get((provider, mode, "layer"), 60.0))

    def allows_compile(self, provider, mode, fam):
        """Whether a compilation fits in what is left of the share."""
        return self.deadline is None or self.share_left() >= self.compile_estimate(provider, mode, fam)

    def record_compile(self, provider, mode, fam, seconds):
        key = (provider, mode, fam)
        self.compiles[key] = max(seconds, self.compiles.get(key, 0.0))
