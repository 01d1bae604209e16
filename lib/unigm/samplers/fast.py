"""A fast path for the fixed-step ODE samplers of ode.py: the same loop, built once and replayed.

The plain loop (`euler(f, x, steps)`) pays, at every step, Python and dispatcher overhead that does not
depend on the batch: a float64 time grid turned into floats (`.item()`), a time tensor built
(`as_time`), every module's __call__, every small op dispatched one by one. For a 2D MLP at batch 1 or
64 this overhead, not arithmetic, is most of the time. `fast_sampler(f, steps)` removes it:

    sample = fast_sampler(model.velocity, steps=100, method="euler")
    x0 = sample(x1)                     # the same numbers as samplers.euler(model.velocity, x1, 100)

(a) the time grid and the step sizes are computed once (the same float64 grid as `time_grid`, so the
arithmetic is the plain loop's); (b) the whole unrolled loop (steps x NFE per step evaluations of f) is
handed to a graph backend once per input shape, dtype and device:

    "trace"    torch.jit.trace of the unrolled loop (TorchScript's graph executor and its CPU fuser):
               about a second to build, the fastest on the course's 2-core CPU. Deprecated upstream
               in favour of torch.compile, but measured here it wins (see `python -m unigm.bench samplers`).
    "compile"  torch.compile of the unrolled loop (Ansel et al. 2024, PyTorch 2); on CUDA in mode
               "reduce-overhead", i.e. replayed as one CUDA graph. On the course CPU, 100 Euler steps took
               312 s to compile (cold cache) for 2.7x at batch 1: never worth it there.
    "eager"    the pre-built loop alone, without a graph (the fallback).

Never different numbers silently: the first call for each shape runs the plain loop too and compares;
a backend that fails to build, or whose samples differ by more than `atol` (+ rtol = atol), is dropped
for that shape with a warning, and the pre-built eager loop (bit-identical to ode.py's) is used.
f must not branch on tensor values (a network does not): a traced graph replays the branch it saw.
"trace" freezes the weights of f's module into the graph (about 1.3x faster at batch 1 than reading them
as attributes, on a busy machine); every call checks their version counters, so a model trained further
(or loaded anew) is rebuilt on its next call rather than sampled with stale weights. A change of
*structure* needs a new fast_sampler.
"""
from __future__ import annotations

import time
import warnings
from typing import Callable

import torch
from torch import nn

from .ode import Field, time_grid

METHODS = {"euler": 1, "heun": 2}  # evaluations of f per step
BACKENDS = ("trace", "compile", "eager")


def default_backend(device: torch.device | str) -> str:
    """'compile' on CUDA (CUDA graphs), 'trace' elsewhere (measured fastest on the course CPU)."""
    return "compile" if torch.device(device).type == "cuda" else "trace"


class UnrolledLoop(nn.Module):
    """x -> x at t_end: `steps` steps of Euler or Heun on f, with the grid baked in as constants.

    The arithmetic is ode.py's, operation for operation (Python-float step sizes from the same float64
    grid, times cast to x's dtype), so in eager mode the result is bit-identical to the plain loop.
    When f is a bound method of an nn.Module, that module is registered here, so that tracing sees its
    weights as parameters rather than constants."""

    def __init__(self, f: Field, steps: int, method: str = "euler", t_start: float = 1.0, t_end: float = 0.0):
        super().__init__()
        if method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
        owner = getattr(f, "__self__", None)
        self.owner = owner if isinstance(owner, nn.Module) else None
        self.f, self.method = f, method
        grid = time_grid(steps, t_start, t_end)  # float64, exact endpoints
        self.h = [(t1 - t0).item() for t0, t1 in zip(grid[:-1], grid[1:])]  # once, not per call
        self.register_buffer("times", grid, persistent=False)  # cast to x's dtype in forward

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        times = self.times.to(device=x.device, dtype=x.dtype)  # (S + 1,)
        batch = x.shape[0]
        for i, h in enumerate(self.h):
            t0, t1 = times[i].expand(batch), times[i + 1].expand(batch)  # (B,)
            if self.method == "euler":
                x = x + h * self.f(x, t0)
            else:  # heun: ode.heun_step
                k1 = self.f(x, t0)
                k2 = self.f(x + h * k1, t1)
                x = x + 0.5 * h * (k1 + k2)
        return x


class FastSampler:
    """A callable x_start -> x_end that integrates f like ode.euler / ode.heun, built once per input
    (shape, dtype, device). `build_seconds[key]` is the first call's cost for that key: building the
    graph, the plain loop's reference run and the check (the "compile time")."""

    def __init__(self, f: Field, steps: int, method: str = "euler", t_start: float = 1.0, t_end: float = 0.0,
                 backend: str | None = None, atol: float = 1e-4):
        if backend is not None and backend not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(BACKENDS)} (or None: the device's default), "
                             f"got {backend!r}")
        self.loop = UnrolledLoop(f, steps, method, t_start, t_end)
        self.steps, self.method, self.backend, self.atol = steps, method, backend, atol
        self.nfe = steps * METHODS[method]
        self.built: dict[tuple, Callable] = {}
        self.backend_used: dict[tuple, str] = {}
        self.build_seconds: dict[tuple, float] = {}
        self.weights = [*self.loop.parameters(), *self.loop.buffers()]
        self.version = self._weights_version()

    def _weights_version(self) -> tuple[int, ...]:
        """In-place updates (optimizer steps, load_state_dict) bump a tensor's version counter."""
        return tuple(t._version for t in self.weights)

    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        key = (tuple(x.shape), x.dtype, x.device)
        version = self._weights_version()
        if version != self.version:  # the weights changed since the graphs were built: rebuild them all
            self.built.clear()
            self.version = version
        if key not in self.built:
            start = time.perf_counter()
            reference = self._build(key, x)
            self.build_seconds[key] = time.perf_counter() - start
            return reference
        return self.built[key](x)

    def _build(self, key: tuple, x: torch.Tensor) -> torch.Tensor:
        backend = self.backend or default_backend(x.device)
        reference = self.loop(x)  # the plain loop's numbers
        try:
            fn = self._graph(backend, x)
            out = fn(x)
        except Exception as error:  # no C++ compiler, untraceable f, ...: never crash, never differ
            self._fall_back(key, f"the {backend!r} backend failed to build ({type(error).__name__}: "
                                 f"{str(error).splitlines()[0] if str(error) else ''})")
            return reference
        if not torch.allclose(out, reference, rtol=self.atol, atol=self.atol):
            gap = (out - reference).abs().max().item()
            self._fall_back(key, f"the {backend!r} backend's samples differ from the plain loop's by {gap:.2e} "
                                 f"> {self.atol}")
            return reference
        self.built[key], self.backend_used[key] = fn, backend
        return reference

    def _graph(self, backend: str, x: torch.Tensor) -> Callable:
        if backend == "eager":
            return self.loop
        if backend == "trace":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # torch.jit's deprecation and tracer warnings
                traced = torch.jit.trace(self.loop, x, check_trace=False)
                return torch.jit.freeze(traced.eval())  # weights become constants (see _weights_version)
        cuda = x.device.type == "cuda"
        compiled = torch.compile(self.loop, mode="reduce-overhead" if cuda else None, dynamic=False)
        # CUDA graphs reuse their output buffer at the next replay: hand out a copy
        return (lambda x: compiled(x).clone()) if cuda else compiled

    def _fall_back(self, key: tuple, why: str) -> None:
        warnings.warn(f"fast_sampler: {why}; using the plain pre-built loop for inputs {key[0]} "
                      f"(same samples, without the speed-up)", RuntimeWarning, stacklevel=4)
        self.built[key], self.backend_used[key] = self.loop, "eager"


def fast_sampler(f: Field, steps: int, method: str = "euler", t_start: float = 1.0, t_end: float = 0.0,
                 backend: str | None = None, atol: float = 1e-4) -> FastSampler:
    """A callable x -> x(t_end) with the samples of ode.euler / ode.heun(f, x, steps) (to atol), faster
    where per-step overhead dominates (small batches). backend: 'trace', 'compile', 'eager' or None
    (the device's default: 'compile' on CUDA, 'trace' elsewhere). See the module doc."""
    return FastSampler(f, steps, method, t_start, t_end, backend, atol)
