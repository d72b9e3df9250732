"""Functional ops. Each one is a custom torch op (``torch.ops.fastalex.<name>``) with a CPU and
a CUDA kernel, a fake kernel for torch.compile and an autograd formula."""
import torch

from fastalex.ops.conv2d_bn_relu import conv2d_bn_relu
from fastalex.ops.conv2d_relu import conv2d_relu
from fastalex.ops.inception import inception
from fastalex.ops.inception_bn import inception_bn
from fastalex.ops.linear import linear
from fastalex.ops.local_response_norm import local_response_norm, local_response_norm_backward
from fastalex.ops.lrn_pool import lrn_max_pool2d, max_pool2d_lrn
from fastalex.ops.max_pool2d import max_pool2d, max_pool2d_backward

__all__ = ["conv2d_bn_relu", "conv2d_relu", "inception", "inception_bn", "linear", "local_response_norm", "local_response_norm_backward", "lrn_max_pool2d",
           "max_pool2d", "max_pool2d_backward", "max_pool2d_lrn", "built_with_cuda"]


def built_with_cuda() -> bool:
    return bool(torch.ops.fastalex.built_with_cuda())
