""".venv/bin/python bench/int8_speed.py --work /tmp/int8_speed --prepare-only   # set-up, untimed
.venv/bin/python bench/int8_speed.py --work /tmp/int8_speed --rounds 5
.venv/bin/python bench/int8_speed.py --fp32 /tmp/engine_speed/export/swinb_random --onnxruntime

Benchmark: int8 against float32, per engine, SwinB's 384² network on CPU, model only, batch 1:
OpenVINO running run/Export.py ``--int8`` files (NNCF, utils.export.quantize) against the
float32 IR, and, with ``--onnxruntime``, ONNX Runtime's own int8 (``quantize_static``, QDQ,
per-channel weights, symmetric int8 activations; measured, not offered) against the float32
ONNX file.

* Weights: bench/infer_speed.py's random SwinB weights in the official format, exported by
  bench/engine_speed.py's set-up into ``--work`` (the 384² network only), or the float32 files
  of an existing export (``--fp32 DIR``: its ``single_384x384`` files are copied, the folder is
  left as it is). Calibration: 32 images written into ``<work>/calibration`` (scikit-image's
  photos other than the measured ones, then synthetic scenes of data/synthetic.py).
* Map difference: int8 against float32 on the measured photos (scikit-image's astronaut,
  coffee, chelsea, rocket and the README's picture, each resized to 384² and normalised as the
  config does), 8-bit maps of the network's output: mean and worst |difference| and the
  fractions of pixels over 1/255 and 10/255. The weights are random: these figures say how far
  int8 moves this network, not how a trained model's maps change.
* Speed: float32 and int8 alternated, every sample bracketed by the matmul speed probe
  (bench.timing); medians over the quiet rounds and the median of the per-round ratios. ONNX
  Runtime's worker threads spin for a while after a run and would slow the probe that follows:
  its runner waits 0.5 s after each (untimed) run.

``RESULT`` lines: ``int8_<engine>`` (ours = int8 s, peer = float32 s, ratio = float32 / int8).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from bench.timing import (
    QuietGate,
    add_gate_arguments,
    missing_requirement,
    pairwise_ratio,
    result_line,
    time_alternating,
)

STEM = "single_384x384"
CALIBRATION = ("immunohistochemistry", "hubble_deep_field", "retina", "colorwheel", "cell")
CALIBRATION_COUNT = 32
ORT_SPIN_WAIT = 0.5  # seconds after an ONNX Runtime run, before the probe (see the docstring)


# -- set-up -------------------------------------------------------------------------------------
def write_calibration(folder: Path, count: int = CALIBRATION_COUNT) -> None:
    """``count`` calibration images: scikit-image photos, then synthetic scenes."""
    from skimage import data as samples

    from data.synthetic import make_pair

    folder.mkdir(parents=True)
    for name in CALIBRATION:
        Image.fromarray(getattr(samples, name)()).convert("RGB").save(folder / f"{name}.jpg")
    rng = np.random.default_rng(0)
    for index in range(count - len(CALIBRATION)):
        image, _ = make_pair(rng, 384)
        Image.fromarray(image).save(folder / f"synthetic_{index:02d}.png")


def fp32_export(work: Path, source: Path | None, onnx: bool) -> tuple[Path, list[Path]]:
    """The float32 export folder in ``work`` (copied from ``source``, or made) and the photos."""
    from bench.engine_speed import prepare
    from bench.infer_speed import write_photos

    if source is None:
        _, _, export, photos = prepare(work, hr=False)
        return export, photos
    photos_dir = work / "photos"
    if not photos_dir.is_dir():
        write_photos(photos_dir)
    export = work / "export" / source.name
    export.mkdir(parents=True, exist_ok=True)
    for suffix in (".xml", ".bin", ".onnx") if onnx else (".xml", ".bin"):
        if not (export / f"{STEM}{suffix}").is_file():
            shutil.copyfile(source / f"{STEM}{suffix}", export / f"{STEM}{suffix}")
    return export, sorted(photos_dir.iterdir())


def openvino_int8(export: Path, calibration: Path) -> Path:
    """run/Export.py --int8's file, made once."""
    from utils.export.quantize import calibration_files, quantize_export

    int8 = export / f"{STEM}.int8.xml"
    if not int8.is_file():
        start = time.perf_counter()
        # random weights: int8 may move their maps by anything (the docstring), so the check's
        # bound is lifted here; its figures are printed by main() on the measured photos
        quantize_export(
            [export / f"{STEM}.xml"], calibration_files(calibration), max_mean_map_diff=255
        )
        print(f"NNCF quantised in {time.perf_counter() - start:.0f} s -> {int8}")
    return int8


def onnxruntime_int8(export: Path, calibration: Path, work: Path) -> Path:
    """ONNX Runtime's static int8 of the float32 ONNX file (QDQ), made once in ``work/ort``."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from utils.export.quantize import calibration_files, network_inputs
    from utils.inference.engines import open_graph
    from utils.io.images import read_image

    int8 = work / "ort" / f"{STEM}.int8.onnx"
    if int8.is_file():
        return int8
    int8.parent.mkdir(parents=True, exist_ok=True)
    fp32 = open_graph(export / f"{STEM}.onnx", "onnxruntime")
    paths = iter(calibration_files(calibration))

    class Reader(CalibrationDataReader):
        def get_next(self):
            path = next(paths, None)
            return None if path is None else network_inputs(fp32, [read_image(path)])

    start = time.perf_counter()
    prepared = work / "ort" / f"{STEM}.prepared.onnx"
    quant_pre_process(str(export / f"{STEM}.onnx"), str(prepared))
    quantize_static(
        str(prepared),
        str(int8),
        Reader(),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QInt8,
        weight_type=QuantType.QInt8,
        # ranges merged every 3 images: all of SwinB's activations for 32 images do not fit
        # in memory (a multiple of 3 images would leave none for the last merge: 32 is not)
        extra_options={"ActivationSymmetric": True, "CalibMaxIntermediateOutputs": 3},
    )
    prepared.unlink()
    print(f"ONNX Runtime quantised in {time.perf_counter() - start:.0f} s -> {int8}")
    return int8


# -- measurement --------------------------------------------------------------------------------
def map_difference(fp32, int8, inputs: list[dict]) -> dict[str, float]:
    """utils.export.quantize.compare_maps over the photos' network outputs."""
    from utils.export.quantize import compare_maps

    reference = np.concatenate([fp32.run(feeds) for feeds in inputs])
    return compare_maps(reference, np.concatenate([int8.run(feeds) for feeds in inputs]))


def runner(graph, feeds: dict, wait: float = 0.0):
    """A timed run of ``graph`` (seconds), then ``wait`` seconds untimed."""

    def run() -> float:
        start = time.perf_counter()
        graph.run(feeds)
        seconds = time.perf_counter() - start
        time.sleep(wait)
        return seconds

    return run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[1])
    parser.add_argument("--work", default="/tmp/int8_speed", help="cache: weights, export")
    parser.add_argument("--fp32", help="an existing float32 export folder to copy from")
    parser.add_argument("--rounds", type=int, default=5, help="alternated rounds per engine")
    parser.add_argument("--onnxruntime", action="store_true", help="also ONNX Runtime's int8")
    parser.add_argument("--prepare-only", action="store_true", help="set up, measure nothing")
    add_gate_arguments(parser)
    args = parser.parse_args()
    problem = missing_requirement(
        {m: "requirements-deploy.txt" for m in ("nncf", "openvino", "onnxruntime")}
    )
    if problem:
        print(problem)
        return 2
    import nncf
    import onnxruntime
    import openvino

    from utils.export.quantize import network_inputs
    from utils.inference.engines import open_graph
    from utils.io.images import read_image

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    export, photos = fp32_export(work, Path(args.fp32) if args.fp32 else None, args.onnxruntime)
    calibration = work / "calibration"
    if not calibration.is_dir():
        write_calibration(calibration)
    pairs = {"openvino": (export / f"{STEM}.xml", openvino_int8(export, calibration))}
    if args.onnxruntime:
        pairs["onnxruntime"] = (
            export / f"{STEM}.onnx",
            onnxruntime_int8(export, calibration, work),
        )
    if args.prepare_only:
        return 0
    print(
        f"openvino {openvino.__version__}, nncf {nncf.__version__}, onnxruntime "
        f"{onnxruntime.__version__}; {len(photos)} photos"
    )
    gate = QuietGate.from_args(args)
    gate.calibrate()
    lines = []
    for engine, (fp32_path, int8_path) in pairs.items():
        fp32, int8 = open_graph(fp32_path, engine), open_graph(int8_path, engine)
        inputs = [network_inputs(fp32, [read_image(path)]) for path in photos]
        maps = map_difference(fp32, int8, inputs)
        print(
            f"{engine} int8 vs float32 maps on {len(photos)} photos: "
            f"{maps['mean_map_diff_255']:.2f}/255 mean, {maps['max_map_diff_255']:.0f}/255 "
            f"worst, {maps['map_fraction_over_1_255']:.1%} of pixels over 1/255, "
            f"{maps['map_fraction_over_10_255']:.1%} over 10/255"
        )
        wait = ORT_SPIN_WAIT if engine == "onnxruntime" else 0.0
        runners = {"fp32": runner(fp32, inputs[0], wait), "int8": runner(int8, inputs[0], wait)}
        for run in runners.values():
            run()  # warm-up (OpenVINO compiles on first use)
        samples = time_alternating(runners, args.rounds, gate)
        c = pairwise_ratio(samples, gate, ours="int8", peer="fp32")
        noisy = " (NOISY: no quiet round)" if c.noisy else ""
        print(
            f"{engine} model only 384²: float32 {c.peer:.3f} s, int8 {c.ours:.3f} s, "
            f"{c.ratio:.2f}x ({c.rounds_kept}/{c.rounds} quiet rounds){noisy}"
        )
        lines.append(result_line(f"int8_{engine}", c.ours, c.peer, c.ratio))
        del fp32, int8
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
