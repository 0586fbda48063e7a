""".venv/bin/python bench/train_speed.py
.venv/bin/python bench/train_speed.py --config configs/InSPyReNet_Tiny.yaml --steps 10 --rounds 6

Benchmark: training step throughput (images/s) on CPU: float32 against AMP bf16, each in NCHW
and channels-last, in the same run.

Each variant is the training step of utils.engine.loop (model in train mode on a batch of the
config's size: forward, the pyramid loss, backward, optimiser step) on random images and masks,
``--steps`` steps per sample. Variants alternate (the order reversed every round), each sample
is bracketed by a matmul speed probe, and the figures are medians over the quiet rounds
(bench.model_speed). There is no training peer that installs from pip (the authors' repository is
not a package), so the baseline is our float32 NCHW step: every ``RESULT train_<variant>`` line
gives ``ours`` = that variant's images/s, ``peer`` = the float32 NCHW images/s and their ratio.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from bench.timing import QuietGate, pairwise_ratio, result_line, time_alternating
from lib import build_model
from lib.optim import build_optimizer
from utils.config import load_config
from utils.runtime import autocast, tune_malloc

ROOT = Path(__file__).resolve().parents[1]

VARIANTS = {
    "fp32": (False, torch.contiguous_format),
    "fp32_channels_last": (False, torch.channels_last),
    "bf16": (True, torch.contiguous_format),
    "bf16_channels_last": (True, torch.channels_last),
}


def make_step(
    config: dict,
    amp: bool,
    memory_format: torch.memory_format,
    steps: int,
    device: str | torch.device = "cpu",
):
    """A callable running ``steps`` training steps of one variant; returns their seconds.

    ``amp`` is the training's mixed precision: bf16 autocast on a CPU, fp16 autocast with a
    GradScaler on CUDA (README "Training"). On CUDA the seconds include a final synchronise."""
    device = torch.device(device)
    torch.manual_seed(0)
    model = build_model(config["Model"]).train().to(device, memory_format=memory_format)
    optimizer = build_optimizer(model, config["Train"]["Optimizer"])
    batch = config["Train"]["Dataloader"]["batch_size"]
    height, width = config["Model"]["base_size"]
    image = torch.randn(batch, 3, height, width, device=device)
    image = image.contiguous(memory_format=memory_format)
    gt = (torch.rand(batch, 1, height, width, device=device) > 0.5).float()
    cuda = device.type == "cuda"
    precision = ("fp16" if cuda else "bf16") if amp else "fp32"
    scaler = torch.amp.GradScaler("cuda", enabled=cuda and amp)

    def run() -> float:
        start = time.perf_counter()
        for _ in range(steps):
            with autocast(device, precision):
                out = model({"image": image, "gt": gt})
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(out["loss"].float()).backward()
            scaler.step(optimizer)
            scaler.update()
        if cuda:
            torch.cuda.synchronize(device)
        return time.perf_counter() - start

    run()  # warm-up
    return run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[1])
    parser.add_argument("--config", default=str(ROOT / "configs" / "InSPyReNet_Tiny.yaml"))
    parser.add_argument("--steps", type=int, default=10, help="training steps per sample")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--max-wait", type=float, default=60.0)
    args = parser.parse_args()

    tune_malloc()
    config = load_config(args.config, require=("Model", "Train"))
    batch = config["Train"]["Dataloader"]["batch_size"]
    runners = {name: make_step(config, *spec, args.steps) for name, spec in VARIANTS.items()}
    gate = QuietGate(max_wait=args.max_wait)
    gate.calibrate()
    samples = time_alternating(runners, args.rounds, gate)
    images = batch * args.steps
    lines = []
    for name in VARIANTS:
        result = pairwise_ratio(samples, gate, ours=name, peer="fp32")
        note = " (NOISY: no quiet round)" if result.noisy else ""
        print(
            f"{name}: {images / result.ours:.1f} img/s, x{result.ratio:.2f} of fp32 "
            f"({result.rounds_kept}/{result.rounds} quiet rounds){note}"
        )
        if name != "fp32":
            ours_rate, base_rate = images / result.ours, images / result.peer
            lines.append(result_line(f"train_{name}", ours_rate, base_rate, result.ratio))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
