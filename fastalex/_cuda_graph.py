"""``fastalex.cuda_graph``: a model's eval forward for one input shape, captured in a CUDA graph."""
from __future__ import annotations

import torch
from torch import nn

_WHO = "fastalex.cuda_graph"


class GraphedForward:
    """What ``fastalex.cuda_graph`` returns. ``out = graphed(x)`` checks that ``x`` has the
    captured shape, dtype and device, copies it into the static input (any memory format),
    replays the graph on the current stream and returns the graph's static output. That output
    is the same tensor on every call, overwritten by the next replay: ``.clone()`` it to keep it.

    ``graph`` (the ``torch.cuda.CUDAGraph``), ``static_input`` and ``static_output`` are
    attributes; ``replay()`` reruns the graph on whatever ``static_input`` holds."""

    def __init__(self, graph, static_input: torch.Tensor, static_output):
        self.graph = graph
        self.static_input = static_input
        self.static_output = static_output

    def check(self, input) -> None:
        if not isinstance(input, torch.Tensor):
            raise TypeError(f"{_WHO}: the input must be a torch.Tensor, got {type(input).__name__}")
        want = self.static_input
        if (tuple(input.shape), input.dtype, input.device) != (tuple(want.shape), want.dtype, want.device):
            raise ValueError(
                f"{_WHO}: the graph was captured for input shape {tuple(want.shape)}, dtype {want.dtype} on "
                f"{want.device}; got shape {tuple(input.shape)}, dtype {input.dtype} on {input.device} (a CUDA graph "
                f"replays fixed shapes: capture another graph for this input)")

    def replay(self):
        self.graph.replay()
        return self.static_output

    def __call__(self, input):
        self.check(input)
        with torch.no_grad():
            self.static_input.copy_(input)
        return self.replay()


def cuda_graph(model: nn.Module, example: torch.Tensor, *, warmup: int = 3) -> GraphedForward:
    """Captures ``model``'s eval forward on inputs like ``example`` (shape, dtype, device) in a
    CUDA graph and returns a callable that replays it: ``g = fastalex.cuda_graph(model, x)``,
    then ``out = g(x_new)`` copies ``x_new`` into the graph's static input and replays (see
    ``GraphedForward``: ``out`` is overwritten by the next call).

    As torch's CUDA-graph notes require, the model first runs ``warmup`` times on a side
    stream (this is where Triton compiles and autotunes its kernels, which synchronises), then
    once under capture, all without autograd (``torch.no_grad``). ``model`` must be in eval mode
    (dropout and batch statistics are not a fixed computation) and on ``example``'s device.

    The graph replays the computation as captured: it reads the parameters' memory, so in-place
    updates (``load_state_dict``, optimizer steps, ``copy_``) show in the next replay, while
    replacing a parameter tensor or moving the model needs a new capture; the TF32 flags
    (``torch.backends.cudnn.allow_tf32``, ``torch.backends.cuda.matmul.allow_tf32``) and
    everything else chosen on the host are fixed at capture time."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"{_WHO}: model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(example, torch.Tensor):
        raise TypeError(f"{_WHO}: example must be a torch.Tensor, got {type(example).__name__}")
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 1:
        raise ValueError(f"{_WHO}: warmup must be a positive int, got {warmup!r}")
    training = [name or type(model).__name__ for name, m in model.named_modules() if m.training]
    if training:
        more = f" and {len(training) - 3} more" if len(training) > 3 else ""
        raise ValueError(
            f"{_WHO}: the model must be in eval mode (call model.eval() first): a CUDA graph replays one fixed "
            f"computation, and training mode (dropout, batch statistics) is not one; in training mode: "
            f"{', '.join(training[:3])}{more}")
    if example.device.type != "cuda":
        raise ValueError(f"{_WHO}: CUDA graphs need a CUDA tensor; the example is on {example.device} (move the "
                         f"model and the example to a GPU)")

    static_input = example.detach().clone()  # keeps the example's memory format
    with torch.cuda.device(example.device), torch.no_grad():
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(warmup):
                model(static_input)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static_output = model(static_input)
    return GraphedForward(graph, static_input, static_output)
