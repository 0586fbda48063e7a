"""Measure a config's model: parameters, FLOPs, latency and throughput per size, batch, precision.

    python -m bench.model_speed --config configs/InSPyReNet_SwinB.yaml
    python -m bench.model_speed --config configs/InSPyReNet_Res2Net50.yaml --sizes 384 512 \\
        --batch-sizes 1 4 --precisions fp32 bf16 --device cpu

For every (input size, batch size, precision) it prints the parameters, the FLOPs of one forward
pass (``torch.utils.flop_counter``: convolutions and matrix products, 2 FLOPs per multiply-add),
the median latency, the throughput (images/s), the achieved GFLOP/s and, on CPU, that rate as a
fraction of a large matmul's rate in the same precision measured in the same run. Weights are
random unless ``--ckpt`` is given (speed does not depend on their values). The model is run as
the predictor runs it (:func:`lib.inference_opt.optimize_for_inference`: BatchNorm folded,
channels-last; ``--eager-reference`` for the plain model) with the malloc tuning of
:mod:`utils.runtime`; ``--compile`` adds ``torch.compile``.

Timing follows bench.timing (speed-probe gated samples).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from bench.timing import QuietGate, Sample, matmul_gflops, matmul_probe
from utils.runtime import PRECISIONS, select_device


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
    from lib import build_model
    from lib.inference_opt import optimize_for_inference
    from utils.config import load_config
    from utils.io.checkpoint import load_model

    config = load_config(args.config, args.opts, require=("Model",))
    model = load_model(config["Model"], args.ckpt) if args.ckpt else build_model(config["Model"])
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
    from utils.runtime import tune_malloc

    parser = argparse.ArgumentParser(
        prog="python -m bench.model_speed", description=__doc__.split("\n\n")[0]
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
