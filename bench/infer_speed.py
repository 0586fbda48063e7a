""".venv/bin/python bench/infer_speed.py
.venv/bin/python bench/infer_speed.py --rounds 6 --precisions fp32 bf16

Benchmark: SwinB at 384² on CPU, batch 1, end to end (decode a photo -> saliency map PNG at the
photo's size), ours against transparent-background (``pip install -r requirements-bench.txt``),
in the same run.

* Weights: one SwinB checkpoint in the official format with random weights (the published ones
  cannot be downloaded here; speed does not depend on the values). The head's BatchNorm
  statistics are set from two photos so that activations have realistic magnitudes. Both
  sides load the same file; transparent-background loads it ``strict=True``.
* Peer: ``Remover(mode="fast", ckpt=...)``, its 384² static-resize mode and its SwinB, run
  as its ``entry_point`` runs a folder: PIL open, ``process(img, type="map")``, PNG save.
* Ours: :class:`utils.inference.predictor.Predictor` with the SwinB config's model and a 384² static
  resize (the same pre-processing as the peer's fast mode), ``read_image`` -> ``predict`` ->
  ``write_png_atomic``: what ``run/Inference.py --type map`` does per image, with the malloc
  tuning of :mod:`utils.runtime`.
* Each contender runs in its own process (so one's allocator settings cannot help the other),
  started once and asked for one pass over the photos per sample. Samples alternate
  (ours, ours-bf16, peer, then reversed), each bracketed by a matmul speed probe; the
  figure is the median of the per-round ratios over the rounds where the machine was quiet
  (bench.model_speed).
* Checks: ours float32 maps equal the peer's within 1/255 (max |diff| <= 1 on 0-255 maps);
  bf16 maps: mean |bf16 - fp32| on 0-255 maps, which must be <= 1 (exit status 1 otherwise).
* Model only: one float32 (and bf16) forward at 384² in our worker, its GFLOP/s (torch's flop
  counter) against a 2048³ matmul's rate in the same precision measured here.

Ends with ``RESULT`` lines: ``infer_e2e_fp32`` and ``infer_e2e_<precision>`` (images/s; peer
always float32), ``forward_<precision>_vs_matmul`` (ours = forward GFLOP/s, peer = matmul
GFLOP/s, ratio = the fraction).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from bench.model_speed import count_flops
from bench.timing import (
    QuietGate,
    add_gate_arguments,
    matmul_gflops,
    missing_requirement,
    pairwise_ratio,
    result_line,
    time_alternating,
)
from utils.runtime import PRECISIONS

ROOT = Path(__file__).resolve().parents[1]

CONFIG = ROOT / "configs" / "InSPyReNet_SwinB.yaml"
SIZE = 384
STATIC_384 = {
    "static_resize": {"size": [SIZE, SIZE]},
    "tonumpy": None,
    "normalize": {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]},
    "totensor": None,
}


# -- set-up (parent) --------------------------------------------------------------------------
def write_photos(folder: Path) -> list[Path]:
    """The sample photos as files: skimage's colour photos and the README's input picture."""
    from skimage import data as samples

    folder.mkdir(parents=True)
    paths = []
    for name in ("astronaut", "coffee", "chelsea", "rocket"):
        path = folder / f"{name}.jpg"
        Image.fromarray(getattr(samples, name)()).save(path, quality=95)
        paths.append(path)
    readme = ROOT / "docs" / "samples" / "input.png"
    if readme.is_file():
        paths.append(folder / "readme_input.png")
        Image.open(readme).convert("RGB").save(paths[-1])
    return paths


def make_checkpoint(path: Path, photos: list[Path], config: Path = CONFIG) -> None:
    """Random weights of ``config``'s model (SwinB by default) in the official format,
    BatchNorm statistics from two photos."""
    from data.transforms import build_transforms
    from lib import build_model
    from utils.config import load_config
    from utils.io.checkpoint import save_checkpoint

    torch.manual_seed(0)
    model = build_model({**load_config(config)["Model"], "pretrained": False})
    batchnorms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    for bn in batchnorms:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average over the calibration passes
        bn.train()
    transform = build_transforms(STATIC_384)
    with torch.no_grad():
        for photo in photos[:2]:
            pil = Image.open(photo).convert("RGB")
            sample = transform({"image": pil, "name": "", "shape": (pil.height, pil.width)})
            model.forward_inspyre(sample["image"][None])
    save_checkpoint(model.eval(), path)


# -- workers (child processes) ----------------------------------------------------------------
def _ours_worker(
    conn,
    ckpt: str,
    photos: list[str],
    out: str,
    precision: str,
    device: str = "cpu",
    compile: bool = False,
    config_path: str = str(CONFIG),
    output: str = "map",
) -> None:
    """Our contender; ``output`` is the ``--type`` it writes (map; rgba for cutout_quality)."""
    from utils.config import load_config
    from utils.inference.compose import compose
    from utils.inference.predictor import Predictor, to_uint8
    from utils.io.images import read_image, write_png_atomic
    from utils.runtime import tune_malloc

    tune_malloc()
    config = load_config(config_path)
    config["Test"]["Dataset"]["transforms"] = STATIC_384
    predictor = Predictor.from_config(
        config, ckpt=ckpt, device=device, precision=precision, compile=compile
    )

    def one_pass() -> float:
        start = time.perf_counter()
        for photo in photos:
            image = read_image(photo)
            saliency = predictor.predict(image)
            if output == "map":
                picture = to_uint8(saliency)
            else:
                picture = compose(np.asarray(image), saliency, output)
            write_png_atomic(Path(out) / f"{Path(photo).stem}.png", picture)
        return time.perf_counter() - start

    def forward() -> tuple[float, float]:
        x = torch.rand(1, 3, SIZE, SIZE).contiguous(memory_format=torch.channels_last)
        dtype = PRECISIONS[precision]

        def run(inp):
            with torch.autocast("cpu", dtype=dtype, enabled=dtype != torch.float32):
                return predictor.model.forward_inspyre(inp)

        flops = count_flops(run, x)
        best = float("inf")
        with torch.inference_mode():
            for _ in range(3):
                start = time.perf_counter()
                run(x)
                best = min(best, time.perf_counter() - start)
        return best, flops / 1e9

    _serve(conn, {"run": one_pass, "forward": forward})


def _peer_worker(
    conn,
    ckpt: str,
    photos: list[str],
    out: str,
    home: str,
    device: str = "cpu",
    output: str = "map",
) -> None:
    """transparent-background's contender, writing its ``process(img, type=output)``."""
    os.environ["TRANSPARENT_BACKGROUND_FILE_PATH"] = home  # its config copy goes there
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from transparent_background import Remover

        remover = Remover(mode="fast", ckpt=ckpt, device=device)

    def one_pass() -> float:
        start = time.perf_counter()
        for photo in photos:
            image = Image.open(photo).convert("RGB")
            remover.process(image, type=output).save(Path(out) / f"{Path(photo).stem}.png")
        return time.perf_counter() - start

    _serve(conn, {"run": one_pass})


def _serve(conn, commands: dict) -> None:
    commands["run"]()  # warm-up; also writes the maps compared at the end
    conn.send("ready")
    while True:
        command = conn.recv()
        if command == "stop":
            return
        conn.send(commands[command]())


class Worker:
    """A contender in its own process; :meth:`ask` sends a command and waits for the answer."""

    def __init__(self, target, *args, **kwargs):
        context = mp.get_context("spawn")
        self.conn, child = context.Pipe()
        self.process = context.Process(
            target=target, args=(child, *args), kwargs=kwargs, daemon=True
        )
        self.process.start()
        child.close()  # the child's end lives in the child: recv() ends (EOFError) if it dies
        if self.conn.recv() != "ready":
            raise RuntimeError("worker failed to start")

    def ask(self, command: str):
        self.conn.send(command)
        return self.conn.recv()

    def stop(self) -> None:
        self.conn.send("stop")
        self.process.join(timeout=30)


# -- checks and report ------------------------------------------------------------------------
def map_differences(ours: Path, other: Path, photos: list[Path]) -> tuple[float, float]:
    """Max and mean |ours - other| over the photos' 0-255 maps (first channel of RGB maps)."""
    largest, means = 0.0, []
    for photo in photos:
        a = np.asarray(Image.open(ours / f"{photo.stem}.png"), np.int16)
        b = np.asarray(Image.open(other / f"{photo.stem}.png"), np.int16)
        a = a if a.ndim == 2 else a[..., 0]
        b = b if b.ndim == 2 else b[..., 0]
        diff = np.abs(a - b)
        largest = max(largest, float(diff.max()))
        means.append(float(diff.mean()))
    return largest, float(np.mean(means))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[1])
    parser.add_argument("--rounds", type=int, default=6, help="alternating rounds timed")
    parser.add_argument(
        "--precisions", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"]
    )
    add_gate_arguments(parser)
    args = parser.parse_args()
    problem = missing_requirement({"transparent_background": "requirements-bench.txt"})
    if problem:
        print(problem)
        return 2
    precisions = ["fp32"] + [p for p in args.precisions if p != "fp32"]

    with tempfile.TemporaryDirectory(prefix="infer_speed_") as tmp:
        tmp = Path(tmp)
        photos = write_photos(tmp / "photos")
        ckpt = tmp / "swinb_random.pth"
        make_checkpoint(ckpt, photos)
        names = [str(p) for p in photos]
        outs = {name: tmp / name for name in [*(f"ours_{p}" for p in precisions), "peer"]}
        for folder in outs.values():
            folder.mkdir()
        print(f"{len(photos)} photos; starting workers (each loads SwinB and warms up)")
        workers = {
            f"ours_{p}": Worker(_ours_worker, str(ckpt), names, str(outs[f"ours_{p}"]), p)
            for p in precisions
        }
        workers["peer"] = Worker(_peer_worker, str(ckpt), names, str(outs["peer"]), str(tmp))
        gate = QuietGate.from_args(args)
        gate.calibrate()
        runners = {name: (lambda w=worker: w.ask("run")) for name, worker in workers.items()}
        samples = time_alternating(runners, args.rounds, gate)

        forward = {}
        for precision in precisions:
            gate.wait()
            seconds, gflop = workers[f"ours_{precision}"].ask("forward")
            forward[precision] = (gflop / seconds, matmul_gflops(PRECISIONS[precision]))
        for worker in workers.values():
            worker.stop()

        fp32_max, fp32_mean = map_differences(outs["ours_fp32"], outs["peer"], photos)
        print(f"maps ours fp32 vs peer: max |diff| {fp32_max:.0f}/255, mean {fp32_mean:.3f}")
        ok = fp32_max <= 1
        for precision in precisions[1:]:
            reduced = outs[f"ours_{precision}"]
            low_max, low_mean = map_differences(reduced, outs["ours_fp32"], photos)
            print(f"maps {precision} vs fp32: mean |diff| {low_mean:.3f}/255, max {low_max:.0f}")
            ok = ok and low_mean <= 1

    lines = []
    for precision in precisions:
        comparison = pairwise_ratio(samples, gate, ours=f"ours_{precision}", peer="peer")
        ours_rate = len(photos) / comparison.ours
        peer_rate = len(photos) / comparison.peer
        print(
            f"ours {precision}: {ours_rate:.3f} img/s, peer fp32: {peer_rate:.3f} img/s, "
            f"ratio {comparison.ratio:.2f} over {comparison.rounds_kept}/{comparison.rounds} "
            f"quiet rounds" + (" (NOISY: no quiet round)" if comparison.noisy else "")
        )
        lines.append(result_line(f"infer_e2e_{precision}", ours_rate, peer_rate, comparison.ratio))
    for precision, (achieved, matmul) in forward.items():
        print(
            f"forward {precision}: {achieved:.0f} GFLOP/s, matmul {matmul:.0f} GFLOP/s "
            f"({achieved / matmul:.0%})"
        )
        lines.append(
            result_line(f"forward_{precision}_vs_matmul", achieved, matmul, achieved / matmul)
        )
    print("\n".join(lines))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
