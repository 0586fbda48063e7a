"""Record what a checkout's command lines produce, and compare two such records.

    .venv/bin/python bench/record_outputs.py --root CHECKOUT --python PY --out DIR
    .venv/bin/python bench/record_outputs.py --compare DIR_A DIR_B

The first form runs only the public command lines of CHECKOUT (``python -m data.synthetic``,
``run/Train.py``, ``run/Test.py``, ``run/Eval.py``, ``run/Inference.py`` and ``Expr.py``) with
the interpreter PY, as subprocesses whose working directory is DIR (``utils.synthetic`` runs
from CHECKOUT, as the README shows it), so that it works for the code before and after a
restructuring. Every path given to them is relative to DIR, and everything they write stays in
DIR. It then writes ``DIR/manifest.json``: SHA-256 hashes of every file they wrote (checkpoint
tensors hashed one by one, images both as bytes and as decoded pixels, videos as decoded
frames), file modes, exit codes and the last stdout / stderr line of each command.

The second form prints a table (one row per item: same / DIFFERENT) and exits with 1 when any
item differs (``info`` rows, such as the byte hashes of .pth files or durations, are shown but
never fail the comparison).

Determinism: the commands run with one intra-op thread (``OMP_NUM_THREADS=1`` etc.), because
float reductions split over a different number of threads give different training results;
with a fixed thread count, training with ``--seed 0`` is bitwise reproducible (one thread is
the only count that gives the same numbers on every machine). ``--device cpu`` is passed
everywhere, ``CUDA_VISIBLE_DEVICES`` is empty, ``PYTHONHASHSEED=0``, umask 022. The bytes of a
.pth file differ on every save even when every tensor is the same (the zip's folder is the
random name of the temporary file it was written to, and torch adds a random
``.data/serialization_id``), so checkpoints are compared tensor by tensor (``torch.load`` with
``weights_only=True``) and their byte hashes are only informational; likewise .npz curves (zip
times) by their arrays and .mp4 videos by their decoded frames. Compare two records made with
the same libraries on the same kind of CPU: oneDNN picks kernels by CPU features.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

MANIFEST = "manifest.json"
LOGS = "logs"
FORMAT_VERSION = 1
CONFIG = "configs/InSPyReNet_Tiny.yaml"
EPOCHS = 2
SEED = 0
TIMEOUT = 900  # seconds per command
THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
)
DISTRIBUTIONS = (
    "torch",
    "torchvision",
    "numpy",
    "opencv-python",
    "opencv-python-headless",
    "opencv-contrib-python-headless",
    "pillow",
    "timm",
    "pysodmetrics",
    "scikit-image",
    "matplotlib",
    "PyYAML",
)

# data, checkpoints and outputs, relative to DIR (the commands' working directory)
DATA = "data/synthetic"
TRAIN_ROOT = f"{DATA}/Train_Dataset"
TEST_ROOT = f"{DATA}/Test_Dataset"
CKPT = "ckpt"
MAPS = "maps"
MAPS_PM = "maps_pm"
RESULTS = "results"
RESULTS_STAT = "results_stat"
INPUTS = "inputs"
VIDEO_IN = "video_in"
BACKGROUND_DIR = "background"
BACKGROUND = f"{BACKGROUND_DIR}/rocket.jpg"
INFER = "infer"
EXPR = "expr"

INFERENCE_TYPES = {  # dest label -> --type
    "map": "map",
    "rgba": "rgba",
    "green": "green",
    "white": "white",
    "colour_255_0_0": "[255,0,0]",
    "blur": "blur",
    "overlay": "overlay",
    "background": BACKGROUND,
}
VIDEO_TYPES = ("green", "rgba")


# ------------------------------------------------------------------------------------------------
# hashing


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def mode_of(path: Path) -> str:
    return oct(path.stat().st_mode & 0o7777)


def array_sha256(array) -> str:
    """dtype, shape and bytes of a numpy array."""
    import numpy as np

    array = np.ascontiguousarray(array)
    header = f"{array.dtype.str}|{array.shape}|".encode()
    return sha256(header + array.tobytes())


def tensor_sha256(tensor) -> str:
    """dtype, shape and bytes of a tensor (any dtype, bfloat16 included)."""
    import torch

    flat = tensor.detach().cpu().contiguous().reshape(-1)
    header = f"{tensor.dtype}|{tuple(tensor.shape)}|".encode()
    return sha256(header + flat.view(torch.uint8).numpy().tobytes())


def flatten_checkpoint(obj: Any, prefix: str = "") -> dict[str, str]:
    """Leaf path -> hash of a tensor, or the repr of any other leaf (float repr is exact)."""
    import torch

    leaves: dict[str, str] = {}
    if isinstance(obj, dict):
        leaves[f"{prefix}/<keys>"] = sha256(json.dumps([str(k) for k in obj]).encode())
        for key, value in obj.items():
            leaves.update(flatten_checkpoint(value, f"{prefix}/{key}"))
    elif isinstance(obj, list | tuple):
        leaves[f"{prefix}/<len>"] = f"{type(obj).__name__}[{len(obj)}]"
        for index, value in enumerate(obj):
            leaves.update(flatten_checkpoint(value, f"{prefix}/{index}"))
    elif isinstance(obj, torch.Tensor):
        leaves[prefix] = tensor_sha256(obj)
    else:
        leaves[prefix] = f"{type(obj).__name__}:{obj!r}"
    return leaves


def load_weights(path: Path) -> Any:
    import torch

    return torch.load(path, map_location="cpu", weights_only=True)


def decoded_image(path: Path) -> dict[str, str]:
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        return {"pixels": "unreadable"}
    return {"pixels": array_sha256(image)}


def decoded_video(path: Path) -> dict[str, Any]:
    import cv2

    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        return {"frames": "unreadable"}
    digest = hashlib.sha256()
    count = 0
    shape = None
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        digest.update(array_sha256(frame).encode())
        shape = frame.shape
        count += 1
    fps = capture.get(cv2.CAP_PROP_FPS)
    width = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH))
    height = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
    capture.release()
    return {
        "frames": digest.hexdigest(),
        "frame_count": count,
        "fps": repr(fps),
        "size": f"{width}x{height}",
        "frame_shape": str(shape),
    }


def decoded_npz(path: Path) -> dict[str, str]:
    import numpy as np

    with np.load(path, allow_pickle=False) as archive:
        arrays = {name: array_sha256(archive[name]) for name in sorted(archive.files)}
    return {"arrays": sha256(json.dumps(arrays, sort_keys=True).encode())}


def describe_file(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(compared, informational) facts about one file."""
    suffix = path.suffix.lower()
    size = path.stat().st_size
    strict: dict[str, Any] = {"mode": mode_of(path)}
    info: dict[str, Any] = {}
    digest = file_sha256(path)
    if suffix in {".mp4", ".avi", ".mov", ".mkv", ".webm"}:
        strict.update(decoded_video(path))  # container bytes may carry encoder noise
        info.update(sha256=digest, size=size)
    elif suffix == ".npz":
        strict.update(decoded_npz(path))  # zip entries carry the time of writing
        info.update(sha256=digest, size=size)
    elif suffix in {".pth", ".pt"}:
        leaves = flatten_checkpoint(load_weights(path))
        strict["tensors"] = sha256(json.dumps(leaves, sort_keys=True).encode())
        info.update(sha256=digest, size=size)
    elif "tfevents" in path.name:  # TensorBoard logs hold wall-clock times
        info.update(sha256=digest, size=size)
    else:
        strict.update(sha256=digest, size=size)
        if suffix in {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"}:
            strict.update(decoded_image(path))
    return strict, info


def files_under(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted((p for p in folder.rglob("*") if p.is_file()), key=lambda p: p.as_posix())


def tree_group(base: Path, *folders: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Every file under ``base/folder`` (hidden ones too), keyed by its path relative to
    ``base``, and how many there are."""
    strict: dict[str, Any] = {}
    info: dict[str, Any] = {}
    count = 0
    for folder in folders:
        if not (base / folder).is_dir():
            strict[f"{folder} <missing>"] = True
        for path in files_under(base / folder):
            name = path.relative_to(base).as_posix()
            strict[name], file_info = describe_file(path)
            if file_info:
                info[name] = file_info
            count += 1
    strict["<count>"] = count
    return strict, info


def under(rows: dict[str, Any], prefix: str) -> dict[str, Any]:
    """The entries of ``rows`` whose key starts with ``prefix``, keyed by the rest."""
    return {key[len(prefix) :]: value for key, value in rows.items() if key.startswith(prefix)}


# ------------------------------------------------------------------------------------------------
# running the commands


def normalise(text: str, out: Path, root: Path) -> str:
    """A log line without the machine-specific parts: DIR, CHECKOUT and durations."""
    for path, label in ((out, "<OUT>"), (root, "<ROOT>")):
        for spelling in {str(path), str(path.resolve())}:
            text = text.replace(spelling, label)
    text = re.sub(r"\d+(?:\.\d+)?\s?(?:ms|min|s)\b", "<T>", text)  # 7.5 s, 15 s, 300ms
    text = re.sub(r"\d+(?:\.\d+)?\s?(?:img|it|images|frames)/s\b", "<R>/s", text)
    return text


def last_line(text: str) -> str:
    lines = [line.rstrip() for line in text.replace("\r", "\n").splitlines() if line.strip()]
    return lines[-1] if lines else ""


class Runner:
    """Runs commands of one checkout and keeps their exit codes and last lines."""

    def __init__(self, root: Path, python: str, out: Path):
        self.root = root
        self.python = python
        self.out = out
        self.commands: dict[str, Any] = {}
        self.commands_info: dict[str, Any] = {}
        self.env = dict(os.environ)
        for name in THREAD_VARIABLES:
            self.env[name] = "1"
        self.env.update(
            CUDA_VISIBLE_DEVICES="",
            PYTHONHASHSEED="0",
            PYTHONDONTWRITEBYTECODE="1",
            PYTHONUNBUFFERED="1",
            LC_ALL="C.UTF-8",
        )
        for name in ("PYTHONPATH", "PYTHONSTARTUP", "PYTHONWARNINGS"):
            self.env.pop(name, None)

    def script(self, relative: str) -> str:
        return str(self.root / relative)

    def run(self, name: str, argv: list[str], cwd: Path | None = None) -> int:
        cwd = cwd or self.out
        command = [self.python, *argv]
        started = time.monotonic()
        try:
            done = subprocess.run(
                command,
                cwd=cwd,
                env=self.env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                errors="replace",
                timeout=TIMEOUT,
            )
            code, stdout, stderr = done.returncode, done.stdout, done.stderr
        except subprocess.TimeoutExpired as error:
            code = "timeout"
            stdout, stderr = (
                part.decode(errors="replace") if isinstance(part, bytes) else part or ""
                for part in (error.stdout, error.stderr)
            )
        seconds = time.monotonic() - started
        logs = self.out / LOGS
        logs.mkdir(exist_ok=True)
        (logs / f"{name}.stdout.txt").write_text(stdout, encoding="utf-8")
        (logs / f"{name}.stderr.txt").write_text(stderr, encoding="utf-8")
        shown = shlex.join(normalise(part, self.out, self.root) for part in command[1:])
        self.commands[name] = {
            "exit_code": code,
            "last_stdout": normalise(last_line(stdout), self.out, self.root),
            "last_stderr": normalise(last_line(stderr), self.out, self.root),
            "argv": shown,
        }
        self.commands_info[name] = {
            "seconds": round(seconds, 1),
            "stdout": sha256(normalise(stdout, self.out, self.root).encode()),
            "stderr": sha256(normalise(stderr, self.out, self.root).encode()),
        }
        print(f"  {name}: exit {code}, {seconds:.1f} s", flush=True)
        return code if isinstance(code, int) else -1

    def run_many(self, jobs: Iterable[tuple[str, list[str]]], workers: int) -> None:
        jobs = list(jobs)
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            list(pool.map(lambda job: self.run(*job), jobs))
        # keep the table in a stable order whatever the order of completion
        for table in (self.commands, self.commands_info):
            names = [name for name, _ in jobs]
            moved = {name: table.pop(name) for name in names if name in table}
            table.update(moved)


# ------------------------------------------------------------------------------------------------
# inputs made by the recorder itself (same bytes on every run)


def write_inputs(out: Path) -> None:
    """scikit-image's sample photos, a background image and a short generated video."""
    import cv2
    import numpy as np
    import skimage.data

    folder = out / INPUTS
    folder.mkdir(parents=True)
    rgb = {"astronaut": skimage.data.astronaut(), "chelsea": skimage.data.chelsea()}
    for name, image in rgb.items():
        bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
        cv2.imwrite(str(folder / f"{name}.jpg"), bgr, [cv2.IMWRITE_JPEG_QUALITY, 90])
    coffee = cv2.cvtColor(skimage.data.coffee(), cv2.COLOR_RGB2BGR)
    cv2.imwrite(str(folder / "coffee.png"), coffee)
    cv2.imwrite(str(folder / "camera.png"), skimage.data.camera())  # grayscale, 512x512
    logo = cv2.cvtColor(skimage.data.logo(), cv2.COLOR_RGBA2BGRA)  # with alpha
    cv2.imwrite(str(folder / "logo.png"), logo)

    background = out / BACKGROUND
    background.parent.mkdir(parents=True)
    rocket = cv2.cvtColor(skimage.data.rocket(), cv2.COLOR_RGB2BGR)
    cv2.imwrite(str(background), rocket, [cv2.IMWRITE_JPEG_QUALITY, 90])

    video = out / VIDEO_IN / "clip.mp4"
    video.parent.mkdir(parents=True)
    width, height, frames = 64, 48, 12
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 12.0, (width, height))
    if not writer.isOpened():
        raise SystemExit("error: OpenCV cannot write mp4v video here")
    y, x = np.mgrid[0:height, 0:width]
    for index in range(frames):
        frame = np.zeros((height, width, 3), np.uint8)
        frame[..., 0] = (x * 3 + index * 5) % 256
        frame[..., 1] = (y * 4) % 256
        frame[..., 2] = 90
        centre = (12 + index * 3, 24 + int(round(6 * np.sin(index / 2))))
        cv2.circle(frame, centre, 10, (30, 220, 250), -1)
        cv2.rectangle(frame, (40 - index, 8), (54 - index, 20), (250, 40, 40), -1)
        writer.write(frame)
    writer.release()


# ------------------------------------------------------------------------------------------------
# the recipe


def record(root: Path, python: str, out: Path, workers: int) -> int:
    root = root.resolve()
    out = out.resolve()
    if out.exists() and any(out.iterdir()):
        raise SystemExit(f"error: {out} is not empty; give a new folder")
    for needed in ("run/Train.py", "run/Test.py", "run/Eval.py", "run/Inference.py", CONFIG):
        if not (root / needed).is_file():
            raise SystemExit(f"error: {root / needed} is missing")
    out.mkdir(parents=True, exist_ok=True)
    os.umask(0o022)
    started = time.monotonic()
    runner = Runner(root, python, out)
    config = str(root / CONFIG)
    items: dict[str, dict[str, Any]] = {}
    info: dict[str, dict[str, Any]] = {}

    def add(group: str, strict_and_info: tuple[dict, dict]) -> None:
        items[group], info[group] = strict_and_info

    print(f"recording {root} with {python} into {out}", flush=True)
    write_inputs(out)
    add("inputs (made by the recorder)", tree_group(out, INPUTS, VIDEO_IN, BACKGROUND_DIR))

    # a) the synthetic data set (its module moved from utils/ to data/ in the restructuring)
    module = "data.synthetic" if (root / "data" / "synthetic.py").is_file() else "utils.synthetic"
    runner.run("synthetic", ["-m", module, "--root", str(out / DATA), "--seed", "0"], cwd=root)
    add("a) synthetic data set", tree_group(out, DATA))

    # b) training: tiny config, seed 0, two epochs
    train_opts = [
        f"Train.Scheduler.epoch={EPOCHS}",
        f"Train.Dataset.root={TRAIN_ROOT}",
        "Train.Dataloader.num_workers=0",
        f"Train.Checkpoint.checkpoint_dir={CKPT}",
    ]
    common = ["--config", config]
    runner.run(
        "train",
        [runner.script("run/Train.py"), *common, "--seed", str(SEED), "--device", "cpu"]
        + ["--no-progress", "--opts", *train_opts],
    )
    add("b) checkpoint folder (files, modes)", tree_group(out, CKPT))
    items["b) latest.pth tensors"], items["b) state.pth leaves"] = checkpoint_items(out / CKPT)

    # c) Test.py on the synthetic test set (checkpoint from Test.Checkpoint.checkpoint_dir)
    test_opts = [
        f"Test.Dataset.root={TEST_ROOT}",
        "Test.Dataloader.num_workers=0",
        f"Test.Checkpoint.checkpoint_dir={CKPT}",
    ]
    test = [runner.script("run/Test.py"), *common, "--device", "cpu", "--no-progress"]
    runner.run("test", [*test, "--opts", *test_opts, f"Eval.pred_root={MAPS}"])
    add("c) Test.py maps", tree_group(out, MAPS))
    runner.run("test_again", [*test, "--opts", *test_opts, f"Eval.pred_root={MAPS}"])
    runner.run("test_pm", [*test, "--PM", "--opts", *test_opts, f"Eval.pred_root={MAPS_PM}"])
    add("c) Test.py --PM maps", tree_group(out, MAPS_PM))

    # d) Eval.py on those maps: serial, then parallel with --stat
    eval_opts = [f"Eval.gt_root={TEST_ROOT}", f"Eval.pred_root={MAPS}"]
    evaluate = [runner.script("run/Eval.py"), *common, "--no-progress"]
    runner.run(
        "eval", [*evaluate, "--workers", "1", "--opts", *eval_opts, f"Eval.result_path={RESULTS}"]
    )
    add("d) Eval.py results", tree_group(out, RESULTS))
    runner.run(
        "eval_stat",
        [*evaluate, "--workers", "2", "--stat", "--opts", *eval_opts]
        + [f"Eval.result_path={RESULTS_STAT}"],
    )
    add("d) Eval.py --workers 2 --stat results", tree_group(out, RESULTS_STAT))

    # e) Inference.py on the photos and on the video
    infer = [runner.script("run/Inference.py"), *common, "--ckpt", f"{CKPT}/latest.pth"]
    infer += ["--device", "cpu", "--no-progress"]
    jobs = []
    for label, kind in INFERENCE_TYPES.items():
        dest = f"{INFER}/images/{label}"
        jobs.append(
            (f"infer_{label}", [*infer, "--source", INPUTS, "--dest", dest, "--type", kind])
        )
    extras = {
        "map_threshold": ["--type", "map", "--threshold", "0.5"],
        "rgba_reverse": ["--type", "rgba", "--reverse"],
        "map_batch2": ["--type", "map", "--batch-size", "2"],
        "map_no_optimize": ["--type", "map", "--no-optimize"],
    }
    for label, extra in extras.items():
        dest = f"{INFER}/images/{label}"
        jobs.append((f"infer_{label}", [*infer, "--source", INPUTS, "--dest", dest, *extra]))
    single = ["--source", f"{INPUTS}/chelsea.jpg", "--dest", f"{INFER}/single", "--type", "rgba"]
    jobs.append(("infer_single_image", [*infer, *single]))
    for kind in VIDEO_TYPES:
        video = ["--source", f"{VIDEO_IN}/clip.mp4", "--dest", f"{INFER}/video/{kind}"]
        jobs.append((f"infer_video_{kind}", [*infer, *video, "--type", kind]))
    runner.run_many(jobs, workers)
    add("e) Inference.py outputs", tree_group(out, INFER))
    runner.run("infer_again", [*infer, "--source", INPUTS, "--dest", f"{INFER}/images/map"])

    # Expr.py: train, test and evaluate in one command, generating its own synthetic data
    expr_data = f"{EXPR}/{DATA}"
    expr_opts = [
        f"Train.Scheduler.epoch={EPOCHS}",
        f"Train.Dataset.root={expr_data}/Train_Dataset",
        "Train.Dataloader.num_workers=0",
        f"Train.Checkpoint.checkpoint_dir={EXPR}/{CKPT}",
        f"Test.Dataset.root={expr_data}/Test_Dataset",
        "Test.Dataloader.num_workers=0",
        f"Test.Checkpoint.checkpoint_dir={EXPR}/{CKPT}",
        f"Eval.gt_root={expr_data}/Test_Dataset",
        f"Eval.pred_root={EXPR}/{MAPS}",
        f"Eval.result_path={EXPR}/{RESULTS}",
    ]
    runner.run(
        "expr",
        [runner.script("Expr.py"), *common, "--seed", str(SEED), "--device", "cpu"]
        + ["--no-progress", "--opts", *expr_opts],
    )
    add("Expr.py outputs", tree_group(out, EXPR))
    items["Expr.py latest.pth tensors"], _ = checkpoint_items(out / EXPR / CKPT)
    items["cross-checks"] = cross_checks(out, items)

    # f) exit codes and last lines; every file written
    items["f) commands"] = runner.commands
    info["f) commands"] = runner.commands_info
    items["files written under DIR"] = {
        path.relative_to(out).as_posix(): True
        for path in files_under(out)
        if path.relative_to(out).parts[0] not in {LOGS, MANIFEST}
    }
    seconds = time.monotonic() - started
    manifest = {
        "format": FORMAT_VERSION,
        "meta": {
            "root": str(root),
            "python": python,
            "out": str(out),
            "seconds": round(seconds, 1),
            "threads": {name: runner.env[name] for name in THREAD_VARIABLES},
            "recorder_python": sys.version.split()[0],
            "versions": library_versions(python),
        },
        "items": items,
        "info": info,
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=False) + "\n")
    failed = [name for name, row in runner.commands.items() if row["exit_code"] != 0]
    print(f"wrote {out / MANIFEST} in {seconds:.0f} s", flush=True)
    if failed:
        print(f"note: commands with a non-zero exit code: {', '.join(failed)}", flush=True)
    return 0


def checkpoint_items(folder: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Per-tensor hashes of latest.pth; per-leaf hashes of state.pth and whether its weights
    are latest.pth's."""
    latest_path, state_path = folder / "latest.pth", folder / "state.pth"
    latest_items: dict[str, Any] = {}
    state_items: dict[str, Any] = {}
    if not latest_path.is_file():
        return {"<missing>": "latest.pth"}, {}
    latest = load_weights(latest_path)
    latest_items["<type>"] = type(latest).__name__
    if isinstance(latest, dict):
        latest_items["<key order>"] = sha256(json.dumps(list(latest)).encode())
        latest_items["<count>"] = len(latest)
    latest_items.update(flatten_checkpoint(latest))
    if not state_path.is_file():
        return latest_items, {"<missing>": "state.pth"}
    state = load_weights(state_path)
    state_items.update(flatten_checkpoint(state))
    weights = state.get("model") if isinstance(state, dict) else None
    state_items["<weights equal latest.pth>"] = isinstance(weights, dict) and flatten_checkpoint(
        weights
    ) == flatten_checkpoint(latest)
    return latest_items, state_items


def cross_checks(out: Path, items: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Facts that relate two outputs (recorded, so that the comparison checks they still hold)."""

    def same_files(group: str, a: str, b: str, other_group: str | None = None) -> str:
        left = under(items.get(group, {}), a)
        right = under(items.get(other_group or group, {}), b)
        if not left or not right:
            return "missing"
        if set(left) != set(right):
            return f"different file lists ({len(left)} vs {len(right)} files)"
        same = [name for name in left if left[name] == right[name]]
        return "identical" if len(same) == len(left) else f"{len(same)} of {len(left)} identical"

    checks: dict[str, Any] = {}
    expr_latest = items.get("Expr.py latest.pth tensors", {})
    train_latest = items.get("b) latest.pth tensors", {})
    equal = bool(train_latest) and expr_latest == train_latest
    checks["Expr.py weights == Train.py weights"] = "identical" if equal else "different"
    checks["Expr.py maps == Test.py maps"] = same_files(
        "c) Test.py maps", f"{MAPS}/", f"{EXPR}/{MAPS}/", "Expr.py outputs"
    )
    checks["Expr.py synthetic data == utils.synthetic data"] = same_files(
        "a) synthetic data set", f"{DATA}/", f"{EXPR}/{DATA}/", "Expr.py outputs"
    )
    csv = out / RESULTS / "result_Synth-TE.csv"
    for other in (out / RESULTS_STAT / "result_Synth-TE.csv", out / EXPR / RESULTS / csv.name):
        name = f"{csv.relative_to(out)} == {other.relative_to(out)}"
        equal = csv.is_file() and other.is_file() and csv.read_bytes() == other.read_bytes()
        checks[name] = "identical" if equal else "different"
    group = "e) Inference.py outputs"
    checks["inference map == map --no-optimize"] = same_files(
        group, f"{INFER}/images/map/", f"{INFER}/images/map_no_optimize/"
    )
    checks["inference map == map --batch-size 2"] = same_files(
        group, f"{INFER}/images/map/", f"{INFER}/images/map_batch2/"
    )
    return checks


def library_versions(python: str) -> dict[str, str]:
    code = (
        "import json, sys\n"
        "from importlib.metadata import PackageNotFoundError, version\n"
        "out = {'python': sys.version.split()[0]}\n"
        f"for name in {DISTRIBUTIONS!r}:\n"
        "    try:\n"
        "        out[name] = version(name)\n"
        "    except PackageNotFoundError:\n"
        "        pass\n"
        "print(json.dumps(out))\n"
    )
    try:
        done = subprocess.run(
            [python, "-c", code], capture_output=True, text=True, timeout=120, check=True
        )
        return json.loads(done.stdout)
    except (subprocess.SubprocessError, json.JSONDecodeError, OSError) as error:
        return {"error": str(error)}


# ------------------------------------------------------------------------------------------------
# comparing


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def differing_keys(left: Any, right: Any) -> list[str]:
    if not isinstance(left, dict) or not isinstance(right, dict):
        return [] if canonical(left) == canonical(right) else ["<value>"]
    keys = list(dict.fromkeys([*left, *right]))
    out = []
    for key in keys:
        if key not in left:
            out.append(f"{key} (only in B)")
        elif key not in right:
            out.append(f"{key} (only in A)")
        elif canonical(left[key]) != canonical(right[key]):
            out.append(str(key))
    return out


def compare(dir_a: Path, dir_b: Path, show: int = 12, write: Callable[[str], None] = print) -> int:
    manifests = []
    for folder in (dir_a, dir_b):
        path = folder / MANIFEST if folder.is_dir() else folder
        try:
            manifests.append(json.loads(path.read_text()))
        except (OSError, json.JSONDecodeError) as error:
            write(f"error: cannot read {path}: {error}")
            return 2
    a, b = manifests
    write(f"A: {a['meta']['root']} ({a['meta']['python']}), {a['meta']['seconds']} s")
    write(f"B: {b['meta']['root']} ({b['meta']['python']}), {b['meta']['seconds']} s")
    if a["meta"].get("versions") != b["meta"].get("versions"):
        write(f"note: library versions differ: {a['meta']['versions']} vs {b['meta']['versions']}")
    rows: list[tuple[str, str, str, list[str]]] = []
    for section, strict in (("items", True), ("info", False)):
        groups = list(dict.fromkeys([*a.get(section, {}), *b.get(section, {})]))
        for group in groups:
            left, right = a[section].get(group), b[section].get(group)
            if not strict and not left and not right:
                continue  # nothing informational recorded for this group
            if left is None or right is None:
                diff = [f"<group only in {'A' if right is None else 'B'}>"]
            else:
                diff = differing_keys(left, right)
            entries = len(left or right or {}) if isinstance(left or right, dict) else 1
            if strict:
                status = "DIFFERENT" if diff else "same"
            else:
                status = "differs (info)" if diff else "same (info)"
            rows.append((group, f"{entries}", status, diff))
    width = max(len(row[0]) for row in rows)
    write("")
    write(f"{'item':<{width}}  {'entries':>7}  result")
    write(f"{'-' * width}  {'-' * 7}  {'-' * 14}")
    for group, entries, status, diff in rows:
        write(f"{group:<{width}}  {entries:>7}  {status}")
        if status == "DIFFERENT":
            for key in diff[:show]:
                write(f"{'':<{width}}           - {key}{detail(a, b, group, key)}")
            if len(diff) > show:
                write(f"{'':<{width}}           ... and {len(diff) - show} more")
    different = [row for row in rows if row[2] == "DIFFERENT"]
    write("")
    if different:
        compared = sum("(info)" not in row[2] for row in rows)
        write(f"DIFFERENT: {len(different)} of {compared} items")
        return 1
    write("all items are the same")
    return 0


def short(value: Any) -> str:
    """A value for the table: hashes cut to 12 characters."""
    if isinstance(value, str) and re.fullmatch(r"[0-9a-f]{64}", value):
        return value[:12]
    return repr(value)


def detail(a: dict, b: dict, group: str, key: str) -> str:
    """What each side says about one differing entry (its differing fields for a dict)."""
    left = a["items"][group].get(key)
    right = b["items"][group].get(key)
    if left is None or right is None:
        return ""
    if not isinstance(left, dict) or not isinstance(right, dict):
        return f": {short(left)} vs {short(right)}"
    parts = [
        f"{field} {short(left.get(field))} vs {short(right.get(field))}"
        for field in dict.fromkeys([*left, *right])
        if left.get(field) != right.get(field)
    ]
    return ": " + "; ".join(parts) if parts else ""


# ------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--root", type=Path, help="the checkout whose command lines to run")
    parser.add_argument("--python", help="interpreter for the checkout (default: this one)")
    parser.add_argument("--out", type=Path, help="new folder for every output and manifest.json")
    parser.add_argument(
        "--jobs",
        type=int,
        default=min(2, os.cpu_count() or 1),
        help="Inference.py commands run at once (each single-threaded; default: 2)",
    )
    parser.add_argument("--compare", nargs=2, type=Path, metavar=("DIR_A", "DIR_B"))
    args = parser.parse_args(argv)
    if args.compare:
        return compare(*args.compare)
    if not args.root or not args.out:
        parser.error("give --root and --out (or --compare DIR_A DIR_B)")
    python = args.python or sys.executable
    if shutil.which(python) is None and not Path(python).is_file():
        parser.error(f"--python {python}: not found")
    return record(args.root, python, args.out, args.jobs)


if __name__ == "__main__":
    sys.exit(main())
