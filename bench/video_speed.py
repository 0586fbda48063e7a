""".venv/bin/python bench/video_speed.py
.venv/bin/python bench/video_speed.py --seconds 2 --fps 5 --rounds 4

Benchmark: video throughput (frames/s) of ``--type green`` on a 720p H.264 clip with an AAC
track (default 10 s at 30 fps), SwinB at 384² on CPU, float32, ours with batch sizes 1 and 4
against transparent-background (``pip install -r requirements-bench.txt``), in the same run.

* Clip: a pan across skimage's astronaut photo, 1280×720, written with PyAV
  (data.synthetic_video), a 440 Hz AAC tone as long as the video.
* Weights: random SwinB weights in the official format, BatchNorm statistics from two photos
  (bench.infer_speed.make_checkpoint); both sides load the same file.
* Ours: what ``run/Inference.py --type green --batch-size B`` runs: data.video decodes
  (PyAV) on the loader thread, frames go through the network B at a time, the composite is
  encoded to H.264 MP4 with the audio copied on the writer's thread
  (utils.inference.pipeline.Runner), with a 384² static resize (the peer's fast mode).
* Peer: its own video path as its ``entry_point`` runs it: ``transparent_background.utils.
  VideoLoader`` (OpenCV decode, PIL frames), ``Remover(mode="fast").process(img,
  type="green")`` frame by frame, ``cv2.VideoWriter`` mp4v at the source's rate (no audio).
* Each contender runs in its own process, started once (model loaded, one warm-up pass) and
  asked for one pass over the clip per sample; samples alternate (ours b1, ours b4, peer, then
  reversed), each bracketed by a matmul speed probe; the figure is the median of per-round
  ratios over the quiet rounds (bench.timing).
* Checks: both outputs have the clip's frame count; ours keeps the audio; the first frames of
  the two composites agree (mean |diff| <= 3 levels). Exit status 1 otherwise.

Ends with ``RESULT video_green_b1`` and ``RESULT video_green_b4`` lines (frames/s; peer: its
video path, always one frame at a time).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

from bench.timing import add_gate_arguments, missing_requirement

BATCH_SIZES = (1, 4)
SIZE = (1280, 720)


# -- workers (child processes) ----------------------------------------------------------------
def _ours_worker(conn, ckpt: str, clip: str, out: str, batch_size: int) -> None:
    from bench.infer_speed import CONFIG, STATIC_384, _serve
    from data.sources import open_source
    from utils.config import load_config
    from utils.inference.compose import parse_output_type
    from utils.inference.outputs import plan_jobs
    from utils.inference.pipeline import Runner, Settings
    from utils.inference.predictor import Predictor
    from utils.runtime import tune_malloc

    tune_malloc()
    config = load_config(CONFIG)
    config["Test"]["Dataset"]["transforms"] = STATIC_384
    predictor = Predictor.from_config(config, ckpt=ckpt, device="cpu")
    green = parse_output_type("green")
    settings = Settings(green, batch_size=batch_size, overwrite=True, progress=False)

    def one_pass() -> float:
        start = time.perf_counter()
        jobs = plan_jobs(open_source(clip), Path(out), green)
        processed, failed = Runner(predictor, settings).run(jobs)
        if (processed, failed) != (1, 0):
            raise RuntimeError(f"ours: {failed} failed")
        return time.perf_counter() - start

    _serve(conn, {"run": one_pass})


def _peer_worker(conn, ckpt: str, clip: str, out: str, home: str) -> None:
    import cv2
    import numpy as np

    from bench.infer_speed import _serve

    os.environ["TRANSPARENT_BACKGROUND_FILE_PATH"] = home  # its config copy goes there
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from transparent_background import Remover
        from transparent_background.utils import VideoLoader

        remover = Remover(mode="fast", ckpt=ckpt, device="cpu")

    def one_pass() -> float:
        start = time.perf_counter()
        loader, writer = VideoLoader(clip), None
        for img, _ in loader:
            if img is None:  # the end of the video
                break
            if writer is None:
                path = str(Path(out) / "clip_green.mp4")
                fourcc = cv2.VideoWriter_fourcc(*"mp4v")
                writer = cv2.VideoWriter(path, fourcc, loader.fps, img.size)
                writer.set(cv2.VIDEOWRITER_PROP_QUALITY, 100)
            out_img = remover.process(img, type="green")
            writer.write(cv2.cvtColor(np.array(out_img), cv2.COLOR_BGR2RGB))
        writer.release()
        return time.perf_counter() - start

    _serve(conn, {"run": one_pass})


# -- checks -----------------------------------------------------------------------------------
def check_outputs(clip: Path, ours: Path, peer: Path) -> bool:
    """Frame counts, our audio and the first composites' agreement; prints what it finds."""
    import av
    import numpy as np

    def first_and_count(path: Path) -> tuple[np.ndarray, int, int]:
        with av.open(str(path)) as container:
            audio = len(container.streams.audio)
            frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
        return frames[0], len(frames), audio

    _, expected, _ = first_and_count(clip)
    ours_first, ours_count, ours_audio = first_and_count(ours)
    peer_first, peer_count, _ = first_and_count(peer)
    difference = float(np.abs(ours_first.astype(int) - peer_first.astype(int)).mean())
    print(
        f"frames: clip {expected}, ours {ours_count}, peer {peer_count}; audio streams ours "
        f"{ours_audio}; first composite mean |ours - peer| {difference:.2f}/255"
    )
    return ours_count == peer_count == expected and ours_audio == 1 and difference <= 3


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[1])
    parser.add_argument("--seconds", type=float, default=10.0, help="clip length")
    parser.add_argument("--fps", type=int, default=30, help="clip frame rate")
    parser.add_argument("--rounds", type=int, default=4, help="alternating rounds timed")
    add_gate_arguments(parser)
    args = parser.parse_args()
    problem = missing_requirement(
        {"transparent_background": "requirements-bench.txt", "av": "requirements-video.txt"}
    )
    if problem:
        print(problem)
        return 2

    from bench.infer_speed import Worker, make_checkpoint, write_photos
    from bench.timing import QuietGate, pairwise_ratio, result_line, time_alternating
    from data.synthetic_video import write_clip

    frames = max(2, round(args.seconds * args.fps))
    with tempfile.TemporaryDirectory(prefix="video_speed_") as tmp:
        tmp = Path(tmp)
        photos = write_photos(tmp / "photos")
        ckpt = tmp / "swinb_random.pth"
        make_checkpoint(ckpt, photos)
        clip = tmp / "clip.mp4"
        write_clip(clip, frames, args.fps, SIZE, audio=True)
        print(f"clip: {frames} frames of {SIZE[0]}x{SIZE[1]} at {args.fps} fps, AAC audio")
        outs = {name: tmp / name for name in [*(f"ours_b{b}" for b in BATCH_SIZES), "peer"]}
        for folder in outs.values():
            folder.mkdir()
        print("starting workers (each loads SwinB and runs one warm-up pass)")
        workers = {
            f"ours_b{b}": Worker(_ours_worker, str(ckpt), str(clip), str(outs[f"ours_b{b}"]), b)
            for b in BATCH_SIZES
        }
        workers["peer"] = Worker(_peer_worker, str(ckpt), str(clip), str(outs["peer"]), str(tmp))
        gate = QuietGate.from_args(args)
        gate.calibrate()
        runners = {name: (lambda w=worker: w.ask("run")) for name, worker in workers.items()}
        samples = time_alternating(runners, args.rounds, gate)
        for worker in workers.values():
            worker.stop()
        ok = all(
            check_outputs(clip, outs[f"ours_b{b}"] / "clip.mp4", outs["peer"] / "clip_green.mp4")
            for b in BATCH_SIZES
        )

    lines = []
    for batch in BATCH_SIZES:
        comparison = pairwise_ratio(samples, gate, ours=f"ours_b{batch}", peer="peer")
        ours_rate, peer_rate = frames / comparison.ours, frames / comparison.peer
        print(
            f"ours batch {batch}: {ours_rate:.3f} frames/s, peer: {peer_rate:.3f} frames/s, "
            f"ratio {comparison.ratio:.2f} over {comparison.rounds_kept}/{comparison.rounds} "
            f"quiet rounds" + (" (NOISY: no quiet round)" if comparison.noisy else "")
        )
        lines.append(result_line(f"video_green_b{batch}", ours_rate, peer_rate, comparison.ratio))
    print("\n".join(lines))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
