"""Triton kernels for the Inception module's branches (see fastalex.models.Inception).

Import-time choice of launch configurations: under the Triton interpreter
(TRITON_INTERPRET=1, how they are tested without a GPU) each kernel runs one small fixed
configuration; on a GPU each is autotuned over the configurations in _configs.py.
"""
