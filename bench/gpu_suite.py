""".venv/bin/python bench/gpu_suite.py          # on a CUDA machine: about 10 min on one H200
.venv/bin/python bench/gpu_suite.py --dry    # CPU, tiny config, a few iterations (CI)

GPU suite: SwinB inference and training on one GPU, ours against transparent-background on the
same GPU, a 2-process DDP run and ONNX Runtime's CUDA provider, written to one JSON file.

Sections of the JSON (``--out``, default ``gpu_suite.json``); each has ``status`` ``ok``,
``skipped`` (with ``reason``) or ``failed`` (with ``reason``), so one broken part does not hide
the others:

* ``environment``: torch, CUDA and GPU names, the config, dry or not.
* ``inference``: end to end (decode a photo -> map PNG at its size, batch 1, 384² static resize:
  bench/infer_speed.py's workers, one process per contender, random SwinB weights in the
  official format that the peer loads too) for ours in fp32, fp16, bf16 and fp16 with
  ``torch.compile``, and transparent-background (``Remover(mode="fast")``, fp32) on the same
  device. Samples alternate (bench/timing.py); ``ratio`` = baseline seconds / ours, medians over
  the quiet rounds, against the peer when it runs, else against our fp32.
* ``training``: the training step of bench/train_speed.py at the config's recipe (SwinB: 384²,
  batch 6), fp32 against AMP (fp16 + GradScaler on CUDA, bf16 on a CPU): images/s and peak
  memory (CUDA: ``torch.cuda.max_memory_allocated``; CPU: the process's peak RSS).
* ``ddp``: ``run/Train.py`` under torchrun with 2 processes (NCCL on 2 GPUs; with ``--dry`` Gloo
  on the CPU) for one epoch on a synthetic data set; skipped with fewer than 2 GPUs.
* ``onnxruntime``: ``run/Export.py --format onnx`` writes the model at 384², then ONNX Runtime
  runs it with the CUDA execution provider (``--dry``: the CPU provider): images/s of the
  network alone, against our fp32 network on the same input.

``--dry`` runs every section on the CPU with the tiny config (configs/InSPyReNet_Tiny.yaml) and a
few iterations: its figures mean nothing, it shows the suite works. The peer runs only SwinB, so
with ``--dry`` (and when it is not installed: ``pip install -r requirements-bench.txt``) its
part is recorded as skipped.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SWINB = ROOT / "configs" / "InSPyReNet_SwinB.yaml"
TINY = ROOT / "configs" / "InSPyReNet_Tiny.yaml"
# Our inference variants: name -> (precision, torch.compile)
VARIANTS = {
    "fp32": ("fp32", False),
    "fp16": ("fp16", False),
    "bf16": ("bf16", False),
    "fp16_compile": ("fp16", True),
}
DRY_VARIANTS = {"fp32": ("fp32", False), "bf16": ("bf16", False)}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[1])
    parser.add_argument("--dry", action="store_true", help="CPU, tiny config, a few iterations")
    parser.add_argument("--out", default="gpu_suite.json", help="the JSON file written")
    parser.add_argument("--device", default=None, help="default: cuda (cpu with --dry)")
    parser.add_argument("--rounds", type=int, default=None, help="inference rounds (5; dry 1)")
    parser.add_argument("--steps", type=int, default=None, help="training steps (20; dry 1)")
    parser.add_argument("--skip", nargs="*", default=[], help="sections to leave out")
    return parser.parse_args(argv)


# -- sections ---------------------------------------------------------------------------------
def environment(ctx: dict) -> dict:
    import torch

    device = ctx["device"]
    found = {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": platform.processor() or platform.machine(),
        "cpu_cores": os.cpu_count(),
        "device": str(device),
        "config": str(ctx["config"].relative_to(ROOT)),
        "dry": ctx["dry"],
    }
    if device.type == "cuda":
        found["gpu"] = torch.cuda.get_device_name(device)
        found["gpus"] = torch.cuda.device_count()
        found["cuda"] = torch.version.cuda
    return found


def inference(ctx: dict) -> dict:
    from bench.infer_speed import (
        Worker,
        _ours_worker,
        _peer_worker,
        map_differences,
        write_photos,
    )
    from bench.timing import QuietGate, pairwise_ratio, time_alternating

    tmp, device = ctx["tmp"], str(ctx["device"])
    photos = write_photos(tmp / "photos")[: 1 if ctx["dry"] else None]
    ckpt = ctx["checkpoint"]
    names = [str(p) for p in photos]
    peer_reason = peer_problem(ctx)
    workers = {}
    try:
        for name, (precision, compile) in ctx["variants"].items():
            out = tmp / f"maps_{name}"
            out.mkdir()
            args = (str(ckpt), names, str(out), precision, device, compile, str(ctx["config"]))
            workers[name] = Worker(_ours_worker, *args)
        if peer_reason is None:
            (tmp / "maps_peer").mkdir()
            args = (str(ckpt), names, str(tmp / "maps_peer"), str(tmp), device)
            workers["peer"] = Worker(_peer_worker, *args)
        gate = QuietGate(max_wait=10.0 if ctx["dry"] else 60.0)
        gate.calibrate(probes=2)
        runners = {name: (lambda w=worker: w.ask("run")) for name, worker in workers.items()}
        samples = time_alternating(runners, ctx["rounds"], gate)
    finally:
        for worker in workers.values():
            with contextlib.suppress(OSError):  # a worker that died cannot be told to stop
                worker.stop()
    baseline = "peer" if "peer" in samples else "fp32"
    result: dict = {"photos": len(photos), "rounds": ctx["rounds"], "baseline": baseline}
    if peer_reason is not None:
        result["peer"] = {"status": "skipped", "reason": peer_reason}
    else:
        seconds = pairwise_ratio(samples, gate, ours="fp32", peer="peer").peer
        largest, mean = map_differences(tmp / "maps_fp32", tmp / "maps_peer", photos)
        result["peer"] = {
            "status": "ok",
            "images_per_s": len(photos) / seconds,
            "max_map_difference_to_ours_fp32": largest,  # 0-255 maps: ours are within 1
            "mean_map_difference_to_ours_fp32": mean,
        }
    for name in ctx["variants"]:
        comparison = pairwise_ratio(samples, gate, ours=name, peer=baseline)
        largest, mean = map_differences(tmp / f"maps_{name}", tmp / "maps_fp32", photos)
        result[name] = {
            "images_per_s": len(photos) / comparison.ours,
            "ratio": comparison.ratio,
            "quiet_rounds": comparison.rounds_kept,
            "max_map_difference_to_fp32": largest,
            "mean_map_difference_to_fp32": mean,
        }
    return result


def peer_problem(ctx: dict) -> str | None:
    """Why transparent-background is not measured, or None."""
    if ctx["dry"]:
        return "dry mode: the tiny config, and the peer runs SwinB only"
    try:
        import transparent_background  # noqa: F401
    except ImportError:
        return "transparent-background is not installed: pip install -r requirements-bench.txt"
    return None


def training(ctx: dict) -> dict:
    import torch

    from bench.memory import peak_rss_mb, reset_peak_rss
    from bench.train_speed import make_step
    from utils.config import load_config

    device = ctx["device"]
    config = load_config(ctx["config"], require=("Model", "Train"))
    config["Model"]["pretrained"] = False  # random weights: speed does not depend on them
    batch = config["Train"]["Dataloader"]["batch_size"]
    result: dict = {
        "batch_size": batch,
        "size": config["Model"]["base_size"],
        "steps": ctx["steps"],
    }
    for name, amp in (("fp32", False), ("amp", True)):
        if device.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(device)
        else:
            reset_peak_rss()
        run = make_step(config, amp, torch.contiguous_format, ctx["steps"], device)
        seconds = min(run() for _ in range(1 if ctx["dry"] else 3))
        if device.type == "cuda":
            peak, what = torch.cuda.max_memory_allocated(device) / 2**20, "cuda_allocated"
        else:
            peak, what = peak_rss_mb(), "process_rss"
        result[name] = {
            "images_per_s": batch * ctx["steps"] / seconds,
            "peak_memory_mib": peak,
            "memory": what,
            "precision": ("fp16" if device.type == "cuda" else "bf16") if amp else "fp32",
        }
        del run
    result["amp_speedup"] = result["amp"]["images_per_s"] / result["fp32"]["images_per_s"]
    return result


def ddp(ctx: dict) -> dict:
    import torch

    from data.synthetic import make_synthetic_dataset

    if not ctx["dry"] and torch.cuda.device_count() < 2:
        return skipped(f"{torch.cuda.device_count()} GPU(s): DDP needs 2")
    config = ctx["config"]
    size, batch = (64, 2) if ctx["dry"] else (384, 6)
    images = 2 * batch * (2 if ctx["dry"] else 8)  # 2 (dry) or 8 steps per process
    data = tmp_folder(ctx, "ddp_data")
    make_synthetic_dataset(data, n_train=images, n_test=2, size=size, seed=0)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    command += [str(ROOT / "run" / "Train.py"), "--config", str(config), "--seed", "0"]
    command += ["--no-progress"] + (["--device", "cpu"] if ctx["dry"] else [])
    command += ["--opts", f"Train.Dataset.root={data / 'Train_Dataset'}"]
    command += ["Train.Dataset.sets=[Synth-TR]", "Model.pretrained=False"]
    command += [f"Train.Checkpoint.checkpoint_dir={tmp_folder(ctx, 'ddp_ckpt')}"]
    command += ["Train.Scheduler.epoch=1", f"Train.Dataloader.batch_size={batch}"]
    start = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=900)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        return failed(f"run/Train.py under torchrun exited {done.returncode}", done.stderr)
    return {
        "processes": 2,
        "backend": "gloo" if ctx["dry"] else "nccl",
        "images": images,
        "batch_per_process": batch,
        "wall_s": seconds,  # start-up and one epoch: a smoke figure, not a throughput
    }


def onnxruntime_section(ctx: dict) -> dict:
    """Export with run/Export.py (subprocess), run with ONNX Runtime, compare with our fp32."""
    try:
        import onnxruntime as ort
    except ImportError:
        return skipped("onnxruntime is not installed: pip install -r requirements-deploy.txt")
    provider = "CPUExecutionProvider" if ctx["dry"] else "CUDAExecutionProvider"
    if provider not in ort.get_available_providers():
        return skipped(f"onnxruntime has no {provider} (onnxruntime-gpu provides it)")
    import numpy as np

    folder = tmp_folder(ctx, "onnx")  # run/Export.py writes single_<base>x<base>.onnx there
    command = [sys.executable, str(ROOT / "run" / "Export.py"), "--config", str(ctx["config"])]
    command += ["--ckpt", str(ctx["checkpoint"]), "--format", "onnx", "--out", str(folder)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=900)
    exported = sorted(folder.glob("single_*.onnx"))
    if done.returncode != 0 or not exported:
        return failed(f"run/Export.py exited {done.returncode}", done.stderr)
    onnx_path = exported[0]
    session = ort.InferenceSession(str(onnx_path), providers=[provider])
    if session.get_providers()[0] != provider:  # ONNX Runtime falls back when CUDA is unusable
        return failed(f"ONNX Runtime could not use {provider} ({session.get_providers()})")
    rng = np.random.default_rng(0)
    feeds = {
        put.name: rng.standard_normal([d if isinstance(d, int) else 1 for d in put.shape]).astype(
            np.float32
        )
        for put in session.get_inputs()
    }
    runs = 3 if ctx["dry"] else 50
    onnx_seconds = best_of(lambda: session.run(None, feeds), runs)
    ours_seconds = best_of(our_network(ctx, [feeds[p.name] for p in session.get_inputs()]), runs)
    return {
        "provider": provider,
        "inputs": {name: list(value.shape) for name, value in feeds.items()},
        "onnx_images_per_s": 1 / onnx_seconds,
        "ours_fp32_images_per_s": 1 / ours_seconds,
        "ratio": ours_seconds / onnx_seconds,
    }


def our_network(ctx: dict, inputs: list) -> Callable[[], object]:
    """One fp32 forward of our optimised network on ``inputs`` (numpy), synchronised."""
    import torch

    from utils.inference.predictor import Predictor

    device = ctx["device"]
    predictor = Predictor.from_config(ctx["config"], ckpt=ctx["checkpoint"], device=device)
    tensors = [torch.from_numpy(x).to(device) for x in inputs]

    sample = dict(zip(("image", "image_resized"), tensors, strict=False))

    def forward() -> None:
        with torch.inference_mode():
            predictor.model(sample)
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    return forward


# -- helpers ------------------------------------------------------------------------------------
def best_of(run: Callable[[], object], times: int) -> float:
    """The fastest of ``times`` runs after one warm-up, in seconds."""
    run()
    best = float("inf")
    for _ in range(times):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def tmp_folder(ctx: dict, name: str) -> Path:
    folder = ctx["tmp"] / name
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def skipped(reason: str) -> dict:
    return {"status": "skipped", "reason": reason}


def failed(reason: str, detail: str = "") -> dict:
    tail = [line for line in detail.strip().splitlines() if line.strip()][-5:]
    return {"status": "failed", "reason": reason, "detail": tail}


SECTIONS: dict[str, Callable[[dict], dict]] = {
    "environment": environment,
    "inference": inference,
    "training": training,
    "ddp": ddp,
    "onnxruntime": onnxruntime_section,
}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    from bench.infer_speed import make_checkpoint, write_photos
    from utils.io.atomic import write_bytes_atomic
    from utils.runtime import disable_tf32, select_device

    disable_tf32()
    device = select_device(args.device or ("cpu" if args.dry else "cuda"))
    results: dict = {}
    with tempfile.TemporaryDirectory(prefix="gpu_suite_") as tmp:
        tmp = Path(tmp)
        config = TINY if args.dry else SWINB
        checkpoint = tmp / "random_weights.pth"
        make_checkpoint(checkpoint, write_photos(tmp / "calibration"), config)
        ctx = {
            "dry": args.dry,
            "device": device,
            "config": config,
            "checkpoint": checkpoint,
            "tmp": tmp,
            "variants": DRY_VARIANTS if args.dry else VARIANTS,
            "rounds": args.rounds or (1 if args.dry else 5),
            "steps": args.steps or (1 if args.dry else 20),
        }
        for name, section in SECTIONS.items():
            if name in args.skip:
                results[name] = skipped("--skip")
                continue
            print(f"== {name}", flush=True)
            start = time.perf_counter()
            try:
                results[name] = {"status": "ok", **section(ctx)}
            except Exception as error:  # one broken section must not lose the others
                detail = traceback.format_exc()
                results[name] = failed(f"{type(error).__name__}: {error}", detail)
            results[name]["seconds"] = round(time.perf_counter() - start, 1)
            print(json.dumps(results[name], indent=1), flush=True)
            if device.type == "cuda":
                torch.cuda.empty_cache()
    text = json.dumps(results, indent=2) + "\n"
    write_bytes_atomic(args.out, text.encode("utf-8"))
    bad = [name for name, part in results.items() if part["status"] == "failed"]
    print(f"wrote {args.out}" + (f"; failed: {', '.join(bad)}" if bad else ""))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
