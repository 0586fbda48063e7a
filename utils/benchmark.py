"""Measure a config's model, and the timing tools the ``bench/`` scripts share.

    python -m utils.benchmark --config configs/InSPyReNet_SwinB.yaml
    python -m utils.benchmark --config configs/InSPyReNet_Res2Net50.yaml --sizes 384 512 \\
        --batch-sizes 1 4 --precisions fp32 bf16 --device cpu

For every (input size, batch size, precision) it prints the parameters, the FLOPs of one forward
pass (``torch.utils.flop_counter``: convolutions and matrix products, 2 FLOPs per multiply-add),
the median latency, the throughput (images/s), the achieved GFLOP/s and, on CPU, that rate as a
fraction of a large matmul's rate in the same precision measured in the same run. Weights are
random unless ``--ckpt`` is given (speed does not depend on their values). The model is run as
the predictor runs it (:func:`lib.inference_opt.optimize_for_inference`: BatchNorm folded,
channels-last; ``--eager-reference`` for the plain model) with the malloc tuning of
:mod:`utils.malloc_tuning`; ``--compile`` adds ``torch.compile``.

Noise: the machines this runs on are shared and sometimes slow down several times for seconds
to minutes without any sign. Every timed sample is bracketed by :func:`matmul_probe` (four
1024³ float32 matmuls); a :class:`QuietGate` waits for the probe to come back to the best speed
seen and drops samples whose probes are slower than that by more than ``slack``. Comparisons
(:func:`time_alternating`) alternate the contenders A B B A ... and report the median of the
pairwise ratios (:func:`pairwise_ratio`); bench scripts end with :func:`result_line`.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

__all__ = [
    "PRECISIONS",
    "QuietGate",
    "Sample",
    "count_flops",
    "count_parameters",
    "matmul_gflops",
    "matmul_probe",
    "pairwise_ratio",
    "result_line",
    "time_alternating",
]

PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


# -- machine speed ----------------------------------------------------------------------------
def matmul_probe(size: int = 1024, repeats: int = 4) -> float:
    """Seconds for ``repeats`` float32 ``size``³ matmuls: how fast the machine is right now."""
    a = torch.rand(size, size)
    b = torch.rand(size, size)
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return time.perf_counter() - start


def matmul_gflops(dtype: torch.dtype = torch.float32, size: int = 2048, repeats: int = 5) -> float:
    """Best GFLOP/s of a ``size``³ CPU matmul in ``dtype`` over ``repeats`` runs."""
    a = torch.rand(size, size).to(dtype)
    b = torch.rand(size, size).to(dtype)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


@dataclass
class QuietGate:
    """Decides whether the machine ran at full speed around a timed sample.

    ``slack``: a sample counts when both its probes are within this fraction of the best probe
    seen. ``max_wait``: seconds :meth:`wait` may spend waiting for a quiet machine.
    """

    slack: float = 0.3
    max_wait: float = 60.0
    best: float = field(default=float("inf"))

    def calibrate(self, probes: int = 5) -> float:
        """Probe a few times and remember the best; returns it."""
        for _ in range(probes):
            self.record(matmul_probe())
        return self.best

    def record(self, seconds: float) -> float:
        self.best = min(self.best, seconds)
        return seconds

    def wait(self) -> float:
        """Probe until the machine is quiet (or ``max_wait`` passed); returns the last probe."""
        deadline = time.monotonic() + self.max_wait
        while True:
            seconds = self.record(matmul_probe())
            if self.is_quiet(seconds) or time.monotonic() > deadline:
                return seconds
            time.sleep(1.0)

    def is_quiet(self, *probes: float) -> bool:
        return max(probes) <= self.best * (1 + self.slack)


@dataclass
class Sample:
    """One timed run: its seconds and the probes taken just before and after it."""

    seconds: float
    probe_before: float
    probe_after: float


def time_alternating(
    runners: Mapping[str, Callable[[], float]],
    rounds: int,
    gate: QuietGate,
    log: Callable[[str], None] = print,
) -> dict[str, list[Sample]]:
    """Run each of ``runners`` once per round, order reversed every other round (A B, B A, ...).

    A runner returns the seconds it measured (so that it can exclude its own set-up, or run in
    another process). Each run waits for :meth:`QuietGate.wait` and is followed by a probe.
    """
    names = list(runners)
    samples: dict[str, list[Sample]] = {name: [] for name in names}
    for index in range(rounds):
        for name in names if index % 2 == 0 else names[::-1]:
            before = gate.wait()
            seconds = runners[name]()
            after = gate.record(matmul_probe())
            samples[name].append(Sample(seconds, before, after))
            log(
                f"round {index} {name}: {seconds:.3f} s "
                f"(probes {before * 1e3:.0f}/{after * 1e3:.0f} ms)"
            )
    return samples


@dataclass
class Comparison:
    """Medians of a comparison and the median of its per-round ratios ``peer / ours``."""

    ours: float
    peer: float
    ratio: float
    rounds_kept: int
    rounds: int

    @property
    def noisy(self) -> bool:
        return self.rounds_kept == 0


def pairwise_ratio(
    samples: Mapping[str, Sequence[Sample]], gate: QuietGate, ours: str = "ours", peer: str = "peer"
) -> Comparison:
    """Per round, ``peer`` seconds / ``ours`` seconds; medians over the rounds where all four
    probes were quiet (over every round, flagged ``noisy``, when none was)."""
    pairs = list(zip(samples[ours], samples[peer], strict=True))
    quiet = [
        (a, b)
        for a, b in pairs
        if gate.is_quiet(a.probe_before, a.probe_after, b.probe_before, b.probe_after)
    ]
    kept = quiet or pairs
    return Comparison(
        ours=statistics.median(a.seconds for a, _ in kept),
        peer=statistics.median(b.seconds for _, b in kept),
        ratio=statistics.median(b.seconds / a.seconds for a, b in kept),
        rounds_kept=len(quiet),
        rounds=len(pairs),
    )


def result_line(name: str, ours: float, peer: float, ratio: float) -> str:
    """The line every benchmark ends with, for collecting results."""
    return f"RESULT {name} ours={ours:.4g} peer={peer:.4g} ratio={ratio:.3g}"


# -- model measurements -----------------------------------------------------------------------
def count_parameters(model: nn.Module) -> int:
    """Number of parameters (weights and biases; buffers not counted)."""
    return sum(p.numel() for p in model.parameters())


def count_flops(fn: Callable[..., object], *args) -> int:
    """FLOPs of one call ``fn(*args)`` by torch's flop counter (2 per multiply-add)."""
    counter = FlopCounterMode(display=False)
    with counter, torch.inference_mode():
        fn(*args)
    return counter.get_total_flops()


@dataclass
class ModelTiming:
    """Result of :func:`time_model` for one setting."""

    size: tuple[int, int]
    batch: int
    precision: str
    gflops: float
    latency: float
    samples_kept: int

    @property
    def throughput(self) -> float:
        return self.batch / self.latency

    @property
    def achieved_gflops(self) -> float:
        return self.gflops / self.latency


def time_model(
    forward: Callable[[torch.Tensor], object],
    example: torch.Tensor,
    precision: str,
    device: torch.device,
    repeats: int,
    gate: QuietGate,
) -> ModelTiming:
    """Median latency of ``forward(example)`` under ``precision`` autocast on ``device``."""
    dtype = PRECISIONS[precision]
    autocast = nullcontext() if dtype == torch.float32 else torch.autocast(device.type, dtype=dtype)

    def run() -> float:
        with torch.inference_mode(), autocast:
            start = time.perf_counter()
            forward(example)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            return time.perf_counter() - start

    with autocast:
        flops = count_flops(forward, example)
    run()  # warm-up (oneDNN primitives, compile, allocator)
    samples = []
    for _ in range(repeats):
        before = gate.wait() if device.type == "cpu" else 0.0
        seconds = run()
        after = gate.record(matmul_probe()) if device.type == "cpu" else 0.0
        samples.append(Sample(seconds, before, after))
    quiet = [s.seconds for s in samples if gate.is_quiet(s.probe_before, s.probe_after)]
    latency = statistics.median(quiet or [s.seconds for s in samples])
    return ModelTiming(
        size=tuple(example.shape[-2:]),
        batch=example.shape[0],
        precision=precision,
        gflops=flops / 1e9,
        latency=latency,
        samples_kept=len(quiet),
    )


# -- command line -----------------------------------------------------------------------------
def _build(args: argparse.Namespace) -> tuple[nn.Module, torch.device]:
    from lib import build_model, load_checkpoint
    from lib.inference_opt import optimize_for_inference
    from utils.config import load_config
    from utils.predictor import select_device

    config = load_config(args.config, args.opts, require=("Model",))
    model = build_model({**config["Model"], "pretrained": False})
    if args.ckpt:
        load_checkpoint(model, args.ckpt)
    device = select_device(args.device)
    model = model.to(device).eval()
    if not args.eager_reference:
        optimize_for_inference(model)
    return model, device


def _forward_fn(model: nn.Module, compile_model: bool) -> Callable[[torch.Tensor], object]:
    def forward(x: torch.Tensor):
        return model.forward_inspyre(x)[0][-1]

    return torch.compile(forward) if compile_model else forward


def main(argv: Sequence[str] | None = None) -> int:
    from utils.malloc_tuning import tune_malloc

    parser = argparse.ArgumentParser(
        prog="python -m utils.benchmark", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--config", required=True, help="YAML config (its Model section)")
    parser.add_argument("--opts", nargs="+", default=[], metavar="KEY=VALUE")
    parser.add_argument("--ckpt", help="checkpoint to load (default: random weights)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N, mps")
    parser.add_argument("--sizes", type=int, nargs="+", default=[384], help="square input sizes")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1])
    parser.add_argument("--precisions", nargs="+", default=["fp32"], choices=sorted(PRECISIONS))
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per setting")
    parser.add_argument("--compile", action="store_true", help="torch.compile the forward pass")
    parser.add_argument(
        "--eager-reference",
        action="store_true",
        help="time the plain eval() model (no BatchNorm folding, NCHW) instead",
    )
    parser.add_argument("--max-wait", type=float, default=30.0, help="seconds to wait for quiet")
    args = parser.parse_args(argv)

    tune_malloc()
    model, device = _build(args)
    forward = _forward_fn(model, args.compile)
    memory_format = torch.contiguous_format if args.eager_reference else torch.channels_last
    gate = QuietGate(max_wait=args.max_wait)
    matmul = {}
    if device.type == "cpu":
        gate.calibrate()
        matmul = {p: matmul_gflops(PRECISIONS[p]) for p in args.precisions if p != "fp16"}
    print(f"{args.config}: {count_parameters(model) / 1e6:.2f} M parameters on {device}")
    for name, rate in matmul.items():
        print(f"machine: {name} matmul 2048³ {rate:.0f} GFLOP/s")
    header = f"{'size':>9} {'batch':>5} {'prec':>4} {'GFLOP':>8} {'latency s':>9} "
    print(header + f"{'img/s':>7} {'GFLOP/s':>8} {'of matmul':>9} {'quiet':>5}")
    for size in args.sizes:
        for batch in args.batch_sizes:
            example = torch.rand(batch, 3, size, size, device=device)
            example = example.contiguous(memory_format=memory_format)
            for precision in args.precisions:
                timing = time_model(forward, example, precision, device, args.repeats, gate)
                share = timing.achieved_gflops / matmul[precision] if precision in matmul else None
                print(
                    f"{size:>4}x{size:<4} {batch:>5} {precision:>4} {timing.gflops:>8.1f} "
                    f"{timing.latency:>9.3f} {timing.throughput:>7.2f} "
                    f"{timing.achieved_gflops:>8.1f} "
                    f"{'' if share is None else f'{share:.0%}':>9} "
                    f"{timing.samples_kept}/{args.repeats}"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
