"""Triton kernels: the Inception module's branches (see fastalex.models.Inception) and a
general conv2d + bias + ReLU, ``fastalex.triton.conv2d_relu`` (the arguments of
fastalex.ops.conv2d_relu).

Import-time choice of launch configurations: under the Triton interpreter
(TRITON_INTERPRET=1, how they are tested without a GPU) each kernel runs one small fixed
configuration; on a GPU each is autotuned over the configurations in _configs.py.
"""
from fastalex.triton.conv2d_relu import conv2d_relu  # noqa: E402

__all__ = ["conv2d_relu"]
