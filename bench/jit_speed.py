""".venv/bin/python bench/jit_speed.py
.venv/bin/python bench/jit_speed.py --config configs/InSPyReNet_SwinB.yaml --rounds 6

Benchmark: ``--jit`` (torch.export + AOTInductor, utils/inference/compiled.py) against the eager
predictor on CPU, batch 1, one static-resize size, in the same run.

Random weights of the config's model in the official format with BatchNorm statistics from
photos (bench/infer_speed.py's ``make_checkpoint``: realistic activations), on a photo.
Prints the one-off compilation time, the time a second predictor takes to load the cached
package, and the network's per-image latency: eager and compiled samples alternate, each
bracketed by a matmul speed probe (bench/timing.py), and the ratio is the median of the
per-round ratios over the quiet rounds. ``RESULT jit_<size>``: ours = compiled images/s,
peer = eager images/s.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[1])
    parser.add_argument("--config", default=str(ROOT / "configs" / "InSPyReNet_Tiny.yaml"))
    parser.add_argument("--size", type=int, default=384, help="static resize (square)")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--passes", type=int, default=5, help="forward passes per sample")
    parser.add_argument("--max-wait", type=float, default=60.0)
    args = parser.parse_args(argv)

    import numpy as np
    from PIL import Image

    from bench.infer_speed import make_checkpoint, write_photos
    from bench.timing import QuietGate, pairwise_ratio, result_line, time_alternating
    from utils.config import load_config
    from utils.inference.predictor import Predictor
    from utils.runtime import tune_malloc

    tune_malloc()
    config = load_config(args.config)
    config["Model"]["pretrained"] = False
    config["Test"]["Dataset"]["transforms"] = {
        "static_resize": {"size": [args.size, args.size]},
        "tonumpy": None,
        "normalize": {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]},
        "totensor": None,
    }
    with tempfile.TemporaryDirectory(prefix="jit_speed_") as tmp:
        ckpt = Path(tmp) / "latest.pth"
        photos = write_photos(Path(tmp) / "photos")
        make_checkpoint(ckpt, photos, Path(args.config))
        photo = np.asarray(Image.open(photos[0]).convert("RGB"))
        eager = Predictor.from_config(config, ckpt=ckpt, device="cpu")
        start = time.perf_counter()
        compiled = Predictor.from_config(config, ckpt=ckpt, device="cpu", jit=True)
        first = compiled.predict(photo)
        compile_seconds = time.perf_counter() - start
        start = time.perf_counter()
        cached = Predictor.from_config(config, ckpt=ckpt, device="cpu", jit=True)
        cached.predict(photo)
        cached_seconds = time.perf_counter() - start
        difference = float(np.abs(first - eager.predict(photo)).max())
        prepared = [eager.prepare(photo)]

        def timed(predictor):
            def run() -> float:
                start = time.perf_counter()
                for _ in range(args.passes):
                    predictor.predict_prepared(prepared)
                return (time.perf_counter() - start) / args.passes

            return run

        gate = QuietGate(max_wait=args.max_wait)
        gate.calibrate()
        runners = {"jit": timed(cached), "eager": timed(eager)}
        samples = time_alternating(runners, args.rounds, gate)
    result = pairwise_ratio(samples, gate, ours="jit", peer="eager")
    note = " (NOISY: no quiet round)" if result.noisy else ""
    print(f"{args.config} at {args.size}²: max |jit - eager| {difference:.2e} on the map")
    print(f"first --jit predictor (export + compile + one map): {compile_seconds:.1f} s")
    print(f"second --jit predictor (cached package + one map): {cached_seconds:.1f} s")
    print(
        f"per image: jit {result.ours:.4f} s, eager {result.peer:.4f} s, x{result.ratio:.2f} "
        f"({result.rounds_kept}/{result.rounds} quiet rounds){note}"
    )
    print(result_line(f"jit_{args.size}", 1 / result.ours, 1 / result.peer, result.ratio))
    return 0


if __name__ == "__main__":
    sys.exit(main())
