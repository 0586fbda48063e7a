""".venv/bin/python bench/engine_speed.py --work /tmp/engine_speed
.venv/bin/python bench/engine_speed.py --work /tmp/engine_speed --rounds 3 --long-rounds 2

Benchmark: the three engines (torch, our optimised path; ONNX Runtime and OpenVINO running the
run/Export.py files) against each other and against transparent-background
(``pip install -r requirements-bench.txt``), SwinB on CPU, in the same run.

* Weights and photos: bench/infer_speed.py's (random SwinB weights in the official format with
  BatchNorm statistics from two photos; skimage's photos and the README's picture). The
  SwinB config's test path (dynamic resize, threshold 512), exported once by
  ``utils.export.exporter.export_model`` into ``--work`` (ONNX and OpenVINO IR: the 384²
  network and pyramid blending at 576x768) and reused by later runs.
* Model only: the network on prepared inputs (no decoding, resizing or writing), batch 1: the
  384² pass and pyramid blending at 576x768 (both passes). Ratio = torch seconds / engine
  seconds.
* End to end: one pass over the photos (decode -> map PNG at the photo's size), each
  contender in its own process started once; the peer as in bench/infer_speed.py
  (``Remover(mode="fast")``, 384² static resize; our photos all take the 384² branch).
* Whole process: wall time of a command-line run on 1 and on 10 photos, each a fresh process:
  ``run/Inference.py --exported`` (the default engine, no torch import),
  ``run/Inference.py --config`` (torch) and ``transparent-background --mode fast``.
* Alternated rounds, every sample bracketed by the matmul speed probe (bench.timing); medians
  over the quiet rounds and the median of the per-round ratios.

``RESULT`` lines: ``model_<lr|hr>_<engine>`` (ours = engine s, peer = torch s, ratio =
torch/engine), ``e2e_<engine>`` (img/s; peer = transparent-background), ``e2e_<engine>_vs_torch``,
``cli<1|10>_<exported|torch>`` (seconds; peer = transparent-background; ratio = peer/ours).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

from bench.infer_speed import Worker, _peer_worker, _serve, make_checkpoint, write_photos
from bench.timing import (
    QuietGate,
    add_gate_arguments,
    missing_requirement,
    pairwise_ratio,
    result_line,
    time_alternating,
)

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
CONFIG = ROOT / "configs" / "InSPyReNet_SwinB.yaml"
HR = (576, 768)
ENGINES = ("torch", "onnxruntime", "openvino")


# -- set-up -------------------------------------------------------------------------------------
def prepare(work: Path, hr: bool = True) -> tuple[Path, Path, Path, list[Path]]:
    """Photos, random SwinB checkpoint, config and export in ``work`` (made once, reused;
    ``hr=False``: the 384² network only)."""
    from utils.config import load_config
    from utils.inference.exported import default_out_dir

    photos_dir = work / "photos"
    if not photos_dir.is_dir():
        write_photos(photos_dir)
    photos = sorted(photos_dir.iterdir())
    ckpt = work / "swinb_random.pth"
    if not ckpt.is_file():
        make_checkpoint(ckpt, photos)
    config_path = work / "config.yaml"
    config = load_config(CONFIG)
    config["Test"]["Checkpoint"]["checkpoint_dir"] = str(work)
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    export = default_out_dir(ckpt)
    needed = f"blend_{HR[0]}x{HR[1]}.xml" if hr else "single_384x384.xml"
    if not (export / needed).is_file():
        from utils.export.exporter import export_model

        start = time.perf_counter()
        export_model(config, ckpt, export, ["onnx", "openvino"], [HR] if hr else [])
        print(f"exported in {time.perf_counter() - start:.0f} s -> {export}")
    for name, count in (("one", 1), ("ten", 10)):
        folder = work / name
        if not folder.is_dir():
            folder.mkdir()
            for index in range(count):
                shutil.copy(photos[index % len(photos)], folder / f"{index:02d}_{photos[0].name}")
    return config_path, ckpt, export, photos


# -- workers (child processes) ------------------------------------------------------------------
def _engine_worker(
    conn, engine: str, config: str, ckpt: str, export: str, photos, out, hr: bool
) -> None:
    from utils.inference.compose import to_uint8
    from utils.inference.loading import open_predictor
    from utils.io.images import read_image, write_png_atomic

    if engine == "torch":
        from utils.runtime import tune_malloc

        tune_malloc()
        predictor = open_predictor(config, engine="torch", ckpt=ckpt, device="cpu")
    else:
        predictor = open_predictor(None, engine=engine, exported=export)
    photo = np.asarray(Image.open(photos[0]).convert("RGB"))
    low = predictor.prepare(np.asarray(Image.fromarray(photo).resize((384, 384))))
    high = (
        predictor.prepare(np.asarray(Image.fromarray(photo).resize((HR[1], HR[0])))) if hr else low
    )

    def network(item) -> float:
        start = time.perf_counter()
        if engine == "torch":
            import torch

            with torch.inference_mode():
                resized = None if item.image_resized is None else [item.image_resized]
                predictor._logits(
                    predictor._batch([item.image]),
                    None if resized is None else predictor._batch(resized),
                )
        else:
            predictor.logits([item])
        return time.perf_counter() - start

    def one_pass() -> float:
        start = time.perf_counter()
        for path in photos:
            saliency = predictor.predict(read_image(path))
            write_png_atomic(Path(out) / f"{Path(path).stem}.png", to_uint8(saliency))
        return time.perf_counter() - start

    network(low), network(high) if hr else None  # warm-up
    _serve(conn, {"run": one_pass, "lr": lambda: network(low), "hr": lambda: network(high)})


def _cli(command: list[str], env: dict) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, env=env, cwd=ROOT, timeout=600)
    return time.perf_counter() - start


# -- report -------------------------------------------------------------------------------------
def _noisy(comparison) -> str:
    return " (NOISY: no quiet round)" if comparison.noisy else ""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[1])
    parser.add_argument("--work", default="/tmp/engine_speed", help="cache: weights, export")
    parser.add_argument("--rounds", type=int, default=3, help="rounds: 384², 1-photo CLI")
    parser.add_argument(
        "--long-rounds", type=int, default=2, help="rounds: HR, end to end, 10-photo CLI"
    )
    parser.add_argument("--no-hr", action="store_true", help="skip the high-resolution network")
    parser.add_argument("--only-cli", action="store_true", help="only the whole-process runs")
    add_gate_arguments(parser)
    args = parser.parse_args()
    problem = missing_requirement({"transparent_background": "requirements-bench.txt"})
    if problem:
        print(problem)
        return 2
    from utils.inference.exported import DEFAULT_ENGINE

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    config, ckpt, export, photos = prepare(work, hr=not args.no_hr)
    gate = QuietGate.from_args(args)
    lr = hr = e2e = {}
    if not args.only_cli:
        names = [str(p) for p in photos]
        outs = {name: work / "out" / name for name in (*ENGINES, "peer")}
        for folder in outs.values():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
        print(f"{len(photos)} photos; starting workers (each loads SwinB and warms up)")
        workers = {
            e: Worker(
                _engine_worker,
                e,
                str(config),
                str(ckpt),
                str(export),
                names,
                str(outs[e]),
                not args.no_hr,
            )
            for e in ENGINES
        }
        workers["peer"] = Worker(_peer_worker, str(ckpt), names, str(outs["peer"]), str(work))

        def ask(command: str, names_: tuple) -> dict:
            return {n: (lambda w=workers[n]: w.ask(command)) for n in names_}

        gate.calibrate()
        lr = time_alternating(ask("lr", ENGINES), args.rounds, gate)
        hr = {} if args.no_hr else time_alternating(ask("hr", ENGINES), args.long_rounds, gate)
        e2e = time_alternating(ask("run", (*ENGINES, "peer")), args.long_rounds, gate)
        for worker in workers.values():
            worker.stop()
    else:
        gate.calibrate()

    env = {**os.environ, "PYTHONPATH": str(ROOT), "TRANSPARENT_BACKGROUND_FILE_PATH": str(work)}
    peer_cli = shutil.which("transparent-background") or str(
        Path(PYTHON).parent / "transparent-background"
    )
    cli = {}
    for size, rounds in (("one", args.rounds), ("ten", args.long_rounds)):
        source, dest = work / size, work / "cli" / size
        runners = {
            "exported": lambda s=source, d=dest: _cli(
                [
                    PYTHON,
                    "run/Inference.py",
                    "--exported",
                    str(export),
                    "--source",
                    str(s),
                    "--dest",
                    str(d / "exported"),
                    "--overwrite",
                    "--no-progress",
                ],
                env,
            ),
            "torch": lambda s=source, d=dest: _cli(
                [
                    PYTHON,
                    "run/Inference.py",
                    "--config",
                    str(config),
                    "--ckpt",
                    str(ckpt),
                    "--device",
                    "cpu",
                    "--source",
                    str(s),
                    "--dest",
                    str(d / "torch"),
                    "--overwrite",
                    "--no-progress",
                ],
                env,
            ),
            "peer": lambda s=source, d=dest: _cli(
                [
                    peer_cli,
                    "--source",
                    str(s),
                    "--dest",
                    str(d / "peer"),
                    "--type",
                    "map",
                    "--mode",
                    "fast",
                    "--ckpt",
                    str(ckpt),
                    "--device",
                    "cpu",
                ],
                env,
            ),
        }
        cli[size] = time_alternating(runners, rounds, gate)

    lines = []
    for label, samples in (("lr", lr), ("hr", hr)) if hr else (("lr", lr),) if lr else ():
        for engine in ENGINES[1:]:
            c = pairwise_ratio(samples, gate, ours=engine, peer="torch")
            print(
                f"model {label} {engine}: {c.ours:.3f} s, torch {c.peer:.3f} s, "
                f"{c.ratio:.2f}x{_noisy(c)}"
            )
            lines.append(result_line(f"model_{label}_{engine}", c.ours, c.peer, c.ratio))
    for engine in ENGINES if e2e else ():
        c = pairwise_ratio(e2e, gate, ours=engine, peer="peer")
        print(
            f"e2e {engine}: {len(photos) / c.ours:.3f} img/s, peer {len(photos) / c.peer:.3f} "
            f"img/s, {c.ratio:.2f}x{_noisy(c)}"
        )
        lines.append(
            result_line(f"e2e_{engine}", len(photos) / c.ours, len(photos) / c.peer, c.ratio)
        )
        if engine != "torch":
            t = pairwise_ratio(e2e, gate, ours=engine, peer="torch")
            lines.append(
                result_line(
                    f"e2e_{engine}_vs_torch", len(photos) / t.ours, len(photos) / t.peer, t.ratio
                )
            )
    for size, count in (("one", 1), ("ten", 10)):
        for ours in ("exported", "torch"):
            c = pairwise_ratio(cli[size], gate, ours=ours, peer="peer")
            print(
                f"CLI {count} photo(s) {ours} ({DEFAULT_ENGINE if ours == 'exported' else 'torch'}"
                f"): {c.ours:.2f} s, peer {c.peer:.2f} s, {c.ratio:.2f}x{_noisy(c)}"
            )
            lines.append(result_line(f"cli{count}_{ours}", c.ours, c.peer, c.ratio))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
