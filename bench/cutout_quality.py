""".venv/bin/python bench/cutout_quality.py
.venv/bin/python bench/cutout_quality.py --rounds 5 --figure docs/foreground_edges.png

Benchmark: foreground colour estimation of cut-outs (``--foreground none|fast|ml``), its colour
error and speed, against transparent-background's rgba path (``pip install -r
requirements-bench.txt``), in the same run; then our end-to-end rgba throughput at 384².

* Ground truth: skimage's photos (astronaut, chelsea, coffee, rocket) composited over another
  of them under soft, known mattes (data/synthetic_mattes.py: an edge blurred by σ = 1, 2 or
  4 px plus 80 hair-like strands), 12 composites, 2.7 Mpx in all.
* Error: each estimate is recomposited over green (what ``--type green`` writes; ``rgba``
  holds the same colours) and compared with the true foreground composited the same way: mean
  |difference| over the semi-transparent pixels (1/255 < α < 254/255), in grey levels (0-255).
  Methods: none (the raw image), fast, ml (utils/inference/foreground.py), the paper's
  two-pass blur fusion (for reference), and the peer: transparent-background 1.3.4's rgba
  post-processing, its ``Remover.matting_fn`` (pymatting's estimate_foreground_ml with its
  default settings) applied as its ``process(type='rgba')`` applies it.
* Speed: seconds per megapixel of each estimation over the 12 composites; pymatting compiles
  with numba on its first call, so every method runs once before timing. Samples alternate
  (none, fast, ml, peer, then reversed), each bracketed by a matmul speed probe; ratios are
  medians of per-round ratios over quiet rounds (bench.timing).
* End to end: bench/infer_speed.py's set-up (random SwinB weights in the official format,
  photos, one process per contender), writing rgba PNGs: ours ``Predictor`` at a 384² static
  resize + ``compose(image, map, "rgba")`` (default ``fast``), the peer
  ``Remover(mode='fast', ckpt=...)`` + ``process(img, type='rgba')``.
* ``--figure PATH``: chelsea shot over the rocket photo, recomposited over green, cropped
  where the halo of none is largest: none | fast | ml | truth side by side, 3x nearest, as a
  PNG (README's docs/foreground_edges.png).

Ends with ``RESULT`` lines: ``cutout_error_fast_vs_none`` (grey levels; ratio none/fast),
``cutout_error_fast_vs_ml`` (ratio ml/fast), ``cutout_error_fast_vs_peer`` (ratio peer/fast),
``foreground_ms_per_mpx_fast_vs_ml`` and ``..._fast_vs_peer`` (ratio = how many times faster
fast is), ``cutout_rgba_e2e`` (images/s; ratio ours/peer).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from bench.timing import add_gate_arguments, missing_requirement

METHODS = ("none", "fast", "ml")
PAIRS = (
    ("astronaut", "coffee"),
    ("chelsea", "coffee"),
    ("coffee", "astronaut"),
    ("rocket", "chelsea"),
)
EDGES = (1.0, 2.0, 4.0)  # σ of the blurred edge, px
SEMI = (1 / 255, 254 / 255)  # the semi-transparent alpha range the error is measured on


def edge_error(sample, method: str = "fast", colours: np.ndarray | None = None) -> float:
    """Mean |recomposite − truth| over green at semi-transparent pixels (grey levels) of a
    :class:`data.synthetic_mattes.MattingSample`: the image's estimate by ``method``, or the
    given foreground ``colours`` (RGB uint8) when not None."""
    from utils.inference.compose import compose

    alpha = sample.alpha
    if colours is None:
        ours = compose(sample.image, alpha, "green", foreground=method)
    else:
        ours = compose(colours, alpha, "green", foreground="none")
    truth = compose(sample.foreground, alpha, "green", foreground="none")
    semi = (alpha > SEMI[0]) & (alpha < SEMI[1])
    return float(np.abs(ours.astype(np.int16) - truth.astype(np.int16))[semi].mean())


def make_samples() -> list:
    """The 12 ground-truth composites (module docstring)."""
    from skimage import data as photos

    from data.synthetic_mattes import matting_sample

    samples = []
    for foreground, background in PAIRS:
        for seed, sigma in enumerate(EDGES):
            fg, bg = getattr(photos, foreground)(), getattr(photos, background)()
            samples.append(matting_sample(fg, bg, seed=seed, edge_sigma=sigma))
    return samples


def peer_rgba_colours(matting_fn, image: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """transparent-background's rgba colours: its matting function on image/255 and the map
    (float64, as its process() passes them), scaled, +0.5 and truncated as it does."""
    colours = matting_fn(image / 255.0, alpha.astype(np.float64))
    return (255 * np.clip(colours, 0.0, 1.0) + 0.5).astype(np.uint8)


def save_figure(path: Path) -> None:
    """Chelsea shot over the rocket photo, recomposited over green: none | fast | ml | truth
    side by side (3x nearest, labelled), cropped where the halo of none is largest."""
    import cv2
    from skimage import data as photos

    from data.synthetic_mattes import matting_sample
    from utils.inference.compose import compose
    from utils.io.images import write_png_atomic

    sample = matting_sample(photos.chelsea(), photos.rocket(), seed=0, edge_sigma=2.0)
    none = compose(sample.image, sample.alpha, "green", foreground="none")
    truth = compose(sample.foreground, sample.alpha, "green", foreground="none")
    # the 80x60 window where the halo of `none` is largest (fast and ml shown in the same one)
    halo = np.abs(none.astype(np.float32) - truth).sum(axis=-1)
    height, width = 60, 80
    scores = cv2.boxFilter(halo, -1, (width, height), normalize=False)
    scores[: height // 2], scores[-height // 2 :] = 0, 0
    scores[:, : width // 2], scores[:, -width // 2 :] = 0, 0
    y, x = np.unravel_index(int(np.argmax(scores)), scores.shape)
    window = (slice(y - height // 2, y + height // 2), slice(x - width // 2, x + width // 2))
    panels = []
    for label, picture in (
        *((m, compose(sample.image, sample.alpha, "green", foreground=m)) for m in METHODS),
        ("truth", truth),
    ):
        crop = cv2.resize(picture[window], None, fx=3, fy=3, interpolation=cv2.INTER_NEAREST)
        crop = np.ascontiguousarray(crop)
        cv2.putText(crop, label, (6, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (0, 0, 0), 3)
        cv2.putText(crop, label, (6, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (255, 255, 255), 1)
        panels.append(crop)
        panels.append(np.full((crop.shape[0], 4, 3), 255, np.uint8))
    path.parent.mkdir(parents=True, exist_ok=True)
    write_png_atomic(path, np.hstack(panels[:-1]))
    print(f"figure: {path}")


def _quality(samples, peer_fn, gate, rounds: int) -> tuple[dict, dict]:
    """Errors (grey levels) and timed samples of none/fast/ml/paper/peer over ``samples``."""
    from bench.timing import time_alternating
    from utils.inference.foreground import PAPER_SIZES, blur_fusion, estimate_foreground

    def paper(sample):
        colours = np.rint(np.clip(blur_fusion(sample.image, sample.alpha, PAPER_SIZES), 0, 255))
        return colours.astype(np.uint8)

    errors = {m: float(np.mean([edge_error(s, m) for s in samples])) for m in METHODS}
    errors["paper"] = float(np.mean([edge_error(s, colours=paper(s)) for s in samples]))
    errors["peer"] = float(
        np.mean(
            [edge_error(s, colours=peer_rgba_colours(peer_fn, s.image, s.alpha)) for s in samples]
        )
    )

    def runner(estimate):
        def run() -> float:
            start = time.perf_counter()
            for sample in samples:
                estimate(sample)
            return time.perf_counter() - start

        return run

    runners = {m: runner(lambda s, m=m: estimate_foreground(s.image, s.alpha, m)) for m in METHODS}
    runners["peer"] = runner(lambda s: peer_rgba_colours(peer_fn, s.image, s.alpha))
    return errors, time_alternating(runners, rounds, gate)


def _end_to_end(photos: list[Path], ckpt: Path, tmp: Path, gate, rounds: int):
    """Alternated rgba runs of our worker and the peer's (bench/infer_speed.py's set-up)."""
    from bench.infer_speed import Worker, _ours_worker, _peer_worker
    from bench.timing import pairwise_ratio, time_alternating

    names = [str(p) for p in photos]
    outs = {name: tmp / name for name in ("ours", "peer")}
    for folder in outs.values():
        folder.mkdir()
    print(f"end to end rgba: {len(photos)} photos; starting workers")
    workers = {
        "ours": Worker(_ours_worker, str(ckpt), names, str(outs["ours"]), "fp32", output="rgba"),
        "peer": Worker(_peer_worker, str(ckpt), names, str(outs["peer"]), str(tmp), output="rgba"),
    }
    runners = {name: (lambda w=worker: w.ask("run")) for name, worker in workers.items()}
    e2e = time_alternating(runners, rounds, gate)
    for worker in workers.values():
        worker.stop()
    return pairwise_ratio(e2e, gate, ours="ours", peer="peer")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[1])
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds timed")
    parser.add_argument("--e2e-rounds", type=int, default=4, help="rounds of the rgba run")
    parser.add_argument("--figure", type=Path, help="write the side-by-side edge crop here")
    parser.add_argument("--no-e2e", action="store_true", help="skip the end-to-end rgba run")
    add_gate_arguments(parser)
    args = parser.parse_args(argv)
    problem = missing_requirement(
        {
            "transparent_background": "requirements-bench.txt",
            "pymatting": "requirements-matting.txt",
        }
    )
    if problem:
        print(problem)
        return 2

    from bench.infer_speed import make_checkpoint, write_photos
    from bench.timing import QuietGate, pairwise_ratio, result_line
    from utils.inference.foreground import estimate_foreground

    if args.figure:
        save_figure(args.figure)
    samples = make_samples()
    megapixels = sum(s.alpha.size for s in samples) / 1e6
    print(f"{len(samples)} composites, {megapixels:.2f} Mpx")
    with tempfile.TemporaryDirectory(prefix="cutout_quality_") as tmp:
        tmp = Path(tmp)
        photos = write_photos(tmp / "photos")
        ckpt = tmp / "swinb_random.pth"
        make_checkpoint(ckpt, photos)

        os.environ["TRANSPARENT_BACKGROUND_FILE_PATH"] = str(tmp)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from transparent_background import Remover

            peer_fn = Remover(mode="fast", ckpt=str(ckpt), device="cpu").matting_fn
        warm = samples[0]
        estimate_foreground(warm.image, warm.alpha, "ml")  # numba compiles here, not timed
        peer_rgba_colours(peer_fn, warm.image, warm.alpha)

        gate = QuietGate.from_args(args)
        gate.calibrate()
        errors, timed = _quality(samples, peer_fn, gate, args.rounds)

        rgba = _end_to_end(photos, ckpt, tmp, gate, args.e2e_rounds) if not args.no_e2e else None

    print("colour error at semi-transparent pixels (grey levels, over green):")
    for name, value in errors.items():
        print(f"  {name:>5}: {value:.3f}")
    speeds = {}
    for other in ("ml", "peer"):
        comparison = pairwise_ratio(timed, gate, ours="fast", peer=other)
        speeds[other] = comparison
        print(
            f"fast {comparison.ours / megapixels * 1e3:.1f} ms/Mpx, {other} "
            f"{comparison.peer / megapixels * 1e3:.1f} ms/Mpx: fast {comparison.ratio:.1f}x "
            f"faster over {comparison.rounds_kept}/{comparison.rounds} quiet rounds"
            + (" (NOISY: no quiet round)" if comparison.noisy else "")
        )
    none_time = pairwise_ratio(timed, gate, ours="none", peer="fast").ours
    print(f"none {none_time / megapixels * 1e3:.2f} ms/Mpx")
    if rgba is not None:
        ours_rate, peer_rate = len(photos) / rgba.ours, len(photos) / rgba.peer
        print(
            f"end to end rgba at 384²: ours {ours_rate:.3f} img/s, peer {peer_rate:.3f} img/s, "
            f"ratio {rgba.ratio:.2f} over {rgba.rounds_kept}/{rgba.rounds} quiet rounds"
            + (" (NOISY: no quiet round)" if rgba.noisy else "")
        )
    fast = errors["fast"]
    lines = [
        result_line("cutout_error_fast_vs_none", fast, errors["none"], errors["none"] / fast),
        result_line("cutout_error_fast_vs_ml", fast, errors["ml"], errors["ml"] / fast),
        result_line("cutout_error_fast_vs_peer", fast, errors["peer"], errors["peer"] / fast),
    ]
    for other, comparison in speeds.items():
        lines.append(
            result_line(
                f"foreground_ms_per_mpx_fast_vs_{other}",
                comparison.ours / megapixels * 1e3,
                comparison.peer / megapixels * 1e3,
                comparison.ratio,
            )
        )
    if rgba is not None:
        lines.append(result_line("cutout_rgba_e2e", ours_rate, peer_rate, rgba.ratio))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
