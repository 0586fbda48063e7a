""".venv/bin/python bench/hr_memory.py
.venv/bin/python bench/hr_memory.py --sizes 1024x1024 4096x3072 --modes blend pm

Benchmark: peak resident memory (and time) of one high-resolution photo through SwinB on CPU,
ours against transparent-background's high-resolution mode, each in a fresh process.

* Ours, ``blend``: the InSPyReNet_SwinB config's test path (dynamic resize, L=1280; inputs above
  the 512 threshold take pyramid blending with the 384² low-resolution pass), map written at
  the photo's size, as ``run/Inference.py`` does it.
* Ours, ``pm``: the same with Patch Merging (``--PM``: 384² patches, stride 96).
* Peer: ``Remover(mode="base", resize="dynamic")`` (its 1280-pixel dynamic resize, one pass),
  ``process(img, type="map")`` and PNG save, on the same photo and checkpoint file.
* The photo is a synthetic JPEG (smooth shapes and noise) of the given size; weights are random
  in the official format (speed and memory do not depend on their values).
* Memory: the process's peak RSS (VmHWM) after the whole photo is done, and the increase over
  the RSS once the model was loaded. The issue's bound: 4096x3072 under 8 GB.

Ends with one ``RESULT hr_peak_rss_<size>_<mode> ours=<MiB> peer=<MiB> ratio=<peer/ours>``
line per size and mode.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import cv2
import numpy as np

from bench.timing import result_line

ROOT = Path(__file__).resolve().parents[1]

CONFIG = ROOT / "configs" / "InSPyReNet_SwinB.yaml"
LIMIT_MIB = 8 * 1024


def make_photo(path: Path, width: int, height: int) -> None:
    """A JPEG with a few smooth shapes on a gradient, plus noise."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = (x / width * 120 + y / height * 80).astype(np.uint8)
    image = np.stack([base, 255 - base, base // 2], axis=-1)
    for _ in range(6):
        center = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        radius = int(rng.integers(min(width, height) // 12, min(width, height) // 4))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        cv2.circle(image, center, radius, colour, -1)
    image = cv2.add(image, rng.integers(0, 20, image.shape, dtype=np.uint8))
    cv2.imwrite(str(path), image, [cv2.IMWRITE_JPEG_QUALITY, 92])


def make_checkpoint(path: Path) -> None:
    import torch

    from lib import build_model
    from utils.config import load_config
    from utils.io.checkpoint import save_checkpoint

    torch.manual_seed(0)
    save_checkpoint(build_model({**load_config(CONFIG)["Model"], "pretrained": False}), path)


def child(mode: str, photo: str, ckpt: str, out: str) -> dict:
    """Run one photo in this (fresh) process; returns the measurements."""
    from bench.memory import peak_rss_mb, reset_peak_rss, rss_mb

    if mode == "peer":
        os.environ["TRANSPARENT_BACKGROUND_FILE_PATH"] = str(Path(out).parent)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from PIL import Image
            from transparent_background import Remover

            remover = Remover(mode="base", ckpt=ckpt, device="cpu", resize="dynamic")
        loaded = rss_mb()
        reset_peak_rss()
        start = time.perf_counter()
        remover.process(Image.open(photo).convert("RGB"), type="map").save(out)
    else:
        from utils.inference.predictor import Predictor, to_uint8
        from utils.io.images import read_image, write_png_atomic
        from utils.runtime import tune_malloc

        tune_malloc()
        predictor = Predictor.from_config(CONFIG, ckpt=ckpt, device="cpu", pm=mode == "pm")
        loaded = rss_mb()
        reset_peak_rss()
        start = time.perf_counter()
        write_png_atomic(out, to_uint8(predictor.predict(read_image(photo))))
    seconds = time.perf_counter() - start
    peak = peak_rss_mb()
    return {"peak": peak, "increase": peak - loaded, "seconds": seconds}


def run_child(mode: str, photo: Path, ckpt: Path, out: Path) -> dict:
    command = [sys.executable, __file__, "--child", mode, str(photo), str(ckpt), str(out)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{mode} on {photo.name} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[1])
    parser.add_argument("--sizes", nargs="+", default=["1024x1024", "2048x2048", "4096x3072"])
    parser.add_argument("--modes", nargs="+", default=["blend", "pm"], choices=["blend", "pm"])
    parser.add_argument("--no-peer", action="store_true", help="measure ours only")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(*args.child)))
        return 0

    lines, ok = [], True
    with tempfile.TemporaryDirectory(prefix="hr_memory_") as tmp:
        tmp = Path(tmp)
        ckpt = tmp / "swinb_random.pth"
        make_checkpoint(ckpt)
        for size in args.sizes:
            width, height = (int(v) for v in size.split("x"))
            photo = tmp / f"photo_{size}.jpg"
            make_photo(photo, width, height)
            peer = None if args.no_peer else run_child("peer", photo, ckpt, tmp / "peer.png")
            if peer:
                print(
                    f"{size} peer (base, dynamic): peak {peer['peak']:.0f} MiB "
                    f"(+{peer['increase']:.0f} over the loaded model), {peer['seconds']:.1f} s"
                )
            for mode in args.modes:
                ours = run_child(mode, photo, ckpt, tmp / f"{mode}.png")
                print(
                    f"{size} ours {mode}: peak {ours['peak']:.0f} MiB "
                    f"(+{ours['increase']:.0f} over the loaded model), {ours['seconds']:.1f} s"
                )
                ok = ok and ours["peak"] < LIMIT_MIB
                peer_peak = peer["peak"] if peer else float("nan")
                name = f"hr_peak_rss_{size}_{mode}"
                lines.append(result_line(name, ours["peak"], peer_peak, peer_peak / ours["peak"]))
    print("\n".join(lines))
    if not ok:
        print(f"error: a peak above {LIMIT_MIB} MiB")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
