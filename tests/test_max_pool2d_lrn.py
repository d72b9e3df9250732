"""fastalex.ops.max_pool2d_lrn (max-pool then LRN as one op) against torch's unfused pair (the
cases and checks are shared with tests/test_lrn_max_pool2d.py)."""
import torch
import torch.nn.functional as F

from fastalex import ops
from test_lrn_max_pool2d import make_spec


def _reference(x, size, alpha=1e-4, beta=0.75, k=1.0, kernel_size=3, stride=2, padding=0, ceil_mode=False):
    return F.local_response_norm(F.max_pool2d(x, kernel_size, stride, padding, ceil_mode=ceil_mode), size, alpha, beta, k)


SPEC = make_spec("max_pool2d_lrn", ops.max_pool2d_lrn, torch.ops.fastalex.max_pool2d_lrn.default, _reference)

