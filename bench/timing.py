"""Timing tools the bench/ scripts share: a matmul speed probe, a gate that keeps only
full-speed samples, A/B alternation and the median of pairwise ratios.

Noise: the machines this runs on are shared and sometimes slow down several times for seconds
to minutes without any sign. Every timed sample is bracketed by :func:`matmul_probe` (four
1024³ float32 matmuls); a :class:`QuietGate` waits for the probe to come back to the best speed
seen and drops samples whose probes are slower than that by more than ``slack``. Comparisons
(:func:`time_alternating`) alternate the contenders A B B A ... and report the median of the
pairwise ratios (:func:`pairwise_ratio`); bench scripts end with :func:`result_line`.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import torch


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

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> QuietGate:
        """The gate of :func:`add_gate_arguments`' options."""
        return cls(slack=args.probe_slack, max_wait=args.max_wait)

    def is_quiet(self, *probes: float) -> bool:
        return max(probes) <= self.best * (1 + self.slack)


def add_gate_arguments(parser: argparse.ArgumentParser) -> None:
    """``--max-wait`` and ``--probe-slack`` of a benchmark's :class:`QuietGate`
    (:meth:`QuietGate.from_args`)."""
    parser.add_argument("--max-wait", type=float, default=60.0, help="seconds to wait for quiet")
    parser.add_argument(
        "--probe-slack",
        type=float,
        default=0.3,
        help="a sample counts when its probes are within this fraction of the best probe",
    )


def missing_requirement(modules: Mapping[str, str]) -> str | None:
    """The error line for the first of ``modules`` (import name -> the requirements file that
    installs it) that cannot be imported; None when all can."""
    for module, requirements in modules.items():
        if importlib.util.find_spec(module) is None:
            return f"error: {module} is not installed: pip install -r {requirements}"
    return None


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
