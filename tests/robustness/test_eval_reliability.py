"""run/Eval.py never loses scores (issue "Reliability II"): concurrent runs into one result
folder, a result folder that cannot be written, a failed table write, a killed worker process
and masks too small to score. Expected outcomes: run/Eval.py's docstring (exit status) and
utils/evaluation/tables.py (lock, atomic writes); every input is made on the fly."""

import csv
import errno
import multiprocessing
import os
import pathlib
import signal
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

import utils.evaluation.evaluator as evaluator
import utils.evaluation.tables as tables
from run import Eval
from utils.evaluation import metrics
from utils.evaluation.tables import markdown_table
from utils.io.atomic import remove_stale_temporaries

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "configs" / "SotA" / "VST.yaml"  # an Eval-only config, all ten metrics
RUNS = 6  # concurrent Eval runs into one result folder


def make_set(root: Path, dataset: str, count: int = 4, extra: dict | None = None) -> None:
    """``count`` 24x32 pairs ``0..count-1`` into ``<root>/gt/<dataset>/masks`` and
    ``<root>/pred/<dataset>``, plus ``extra`` {stem: (H, W)} pairs of those sizes."""
    rng = np.random.default_rng(len(dataset))
    masks, preds = root / "gt" / dataset / "masks", root / "pred" / dataset
    masks.mkdir(parents=True)
    preds.mkdir(parents=True)
    shapes = {str(index): (24, 32) for index in range(count)} | (extra or {})
    for index, (stem, shape) in enumerate(shapes.items()):
        gt = np.zeros(shape, np.uint8)
        gt[: max(1, shape[0] // 2), index % shape[1] :] = 255
        pred = np.clip(gt * 0.8 + rng.normal(40, 30, shape), 0, 255).astype(np.uint8)
        cv2.imwrite(str(masks / f"{stem}.png"), gt)
        cv2.imwrite(str(preds / f"{stem}.png"), pred)


def argv(root: Path, results: Path, method: str, datasets: str = "Toy", workers: int = 1):
    return [
        "--config",
        str(CONFIG),
        "--method",
        method,
        "--workers",
        str(workers),
        "--no-progress",
        "--opts",
        f"Eval.gt_root={root / 'gt'}",
        f"Eval.pred_root={root / 'pred'}",
        f"Eval.result_path={results}",
        f"Eval.datasets=[{datasets}]",
    ]


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def errors(run) -> list[str]:
    return [line for line in run.lines if line.startswith("error: ")]


# ------------------------------------------------------------------------------------------------
# 1. concurrent runs into one result folder


def _eval_together(args: list[str], start, read_count) -> None:
    """One Eval run (a forked process) that updates the table when all the others do, and
    writes it (the csv.DictWriter comes after the read) only once all of them have read it or
    half a second went by: without a lock every run reads the table before any writes it (each
    keeps only its own row); with the lock the runs take turns, each waiting that half second."""
    update, writer = evaluator.update_results_table, csv.DictWriter

    def update_together(*args, **kwargs):
        start.wait(timeout=120)
        return update(*args, **kwargs)

    def writer_once_all_have_read(*args, **kwargs):
        with read_count.get_lock():
            read_count.value += 1
        deadline = time.monotonic() + 0.5
        while read_count.value < RUNS and time.monotonic() < deadline:
            time.sleep(0.005)
        return writer(*args, **kwargs)

    evaluator.update_results_table = update_together
    csv.DictWriter = writer_once_all_have_read  # this process only: it ends with the run
    sys.exit(Eval.main(args))


@pytest.mark.slow
def test_concurrent_runs_keep_every_row(tmp_path):
    """Six Eval processes finishing together into one result folder: six rows, and the .md is
    the .csv's table (both written under the table's lock)."""
    make_set(tmp_path, "Toy", count=3)
    results = tmp_path / "results"
    context = multiprocessing.get_context("fork")  # the hooks above travel with the fork
    start, read_count = context.Barrier(RUNS), context.Value("i", 0)
    methods = [f"method{index}" for index in range(RUNS)]
    runs = [
        context.Process(
            target=_eval_together, args=(argv(tmp_path, results, method), start, read_count)
        )
        for method in methods
    ]
    for run in runs:
        run.start()
    for run in runs:
        run.join(timeout=300)
    for run in runs:
        if run.is_alive():  # hung: fail, leaving no process behind
            run.kill()
    assert [run.exitcode for run in runs] == [0] * RUNS
    rows = read_csv(results / "result_Toy.csv")
    assert sorted(row["method"] for row in rows) == methods
    columns = list(rows[0])[1:]
    assert (results / "result_Toy.md").read_text() == markdown_table("Toy", columns, rows)
    lock = results / ".result_Toy.csv.lock"
    assert lock.is_file() and lock.stat().st_size == 0  # ours, hidden, beside the table


def test_the_lock_file_is_hidden_and_not_swept(tmp_path):
    """The sweep of killed writes' temporary files (utils.io.atomic) leaves the lock file
    alone, however old."""
    tables.update_results_table(tmp_path, "Toy", "A", ["Sm"], {"Sm": 0.5})
    lock = tmp_path / ".result_Toy.csv.lock"
    an_hour_ago = time.time() - 3600
    os.utime(lock, (an_hour_ago, an_hour_ago))
    assert remove_stale_temporaries(tmp_path) == [] and lock.exists()


# ------------------------------------------------------------------------------------------------
# 2. a result folder that cannot hold the tables, a table that cannot be written


def _no_scoring(monkeypatch) -> list:
    """Record every image scored (in this process: --workers 1)."""
    scored = []
    real = evaluator.image_quantities

    def counting(*args, **kwargs):
        scored.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(evaluator, "image_quantities", counting)
    return scored


def _read_only_file_system(monkeypatch, folder: Path) -> None:
    """Creating a file in ``folder`` fails as on a read-only mount (root ignores permissions)."""
    real = tempfile.TemporaryFile

    def refuse_there(*args, **kwargs):
        if Path(kwargs.get("dir") or ".") == folder:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS))
        return real(*args, **kwargs)

    monkeypatch.setattr(tempfile, "TemporaryFile", refuse_there)


@pytest.mark.parametrize(
    ("case", "phrase"),
    [
        ("a file", "is a file, not a folder"),
        ("below a file", "is a file, not a folder"),
        ("read-only file system", "the file system is read-only"),
    ],
)
def test_unusable_result_folder_exits_2_before_scoring(
    tmp_path, run_script, monkeypatch, case, phrase
):
    make_set(tmp_path, "Toy")
    blocker = tmp_path / "results"
    blocker.write_text("a file the user keeps\n")
    results = blocker / "sub" if case == "below a file" else blocker
    if case == "read-only file system":
        blocker.unlink()
        _read_only_file_system(monkeypatch, results)
    scored = _no_scoring(monkeypatch)
    run = run_script(Eval.main, argv(tmp_path, results, "mine"))
    assert run.status == 2
    assert not scored and not any("scored" in line for line in run.lines)
    (line,) = errors(run)
    assert line.startswith(f"error: result folder {results}: cannot write: ")
    assert phrase in line and "Eval.result_path" in line
    if case != "read-only file system":
        assert blocker.read_text() == "a file the user keeps\n"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_result_folder_exits_2(tmp_path, run_script):
    make_set(tmp_path, "Toy")
    results = tmp_path / "results"
    results.mkdir()
    results.chmod(0o555)
    try:
        run = run_script(Eval.main, argv(tmp_path, results, "mine"))
    finally:
        results.chmod(0o755)
    assert run.status == 2
    (line,) = errors(run)
    assert f"result folder {results}: cannot write: no permission to write there" in line


@pytest.mark.parametrize(
    ("code", "advice"),
    [
        (errno.ENOSPC, "free some disk space"),
        (errno.EACCES, "make the folder writable"),
        (errno.EROFS, "the file system is read-only"),
    ],
)
def test_a_failed_table_write_prints_the_scores_and_keeps_the_table(
    tmp_path, run_script, monkeypatch, code, advice
):
    """The disk fills up (or permission goes) half-way through writing the table: the scores
    were printed before, the previous table stays whole, no temporary file stays, exit 1."""
    make_set(tmp_path, "Toy")
    results = tmp_path / "results"
    assert run_script(Eval.main, argv(tmp_path, results, "old")).status == 0
    before = {name: (results / name).read_bytes() for name in ("result_Toy.csv", "result_Toy.md")}
    real_write = pathlib.Path.write_bytes

    def write_half_then_fail(self, data):
        if not self.name.startswith(".result_Toy."):
            return real_write(self, data)
        real_write(self, data[: len(data) // 2])
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(pathlib.Path, "write_bytes", write_half_then_fail)
    run = run_script(Eval.main, argv(tmp_path, results, "mine"))
    assert run.status == 1
    (line,) = errors(run)
    csv_path = results / "result_Toy.csv"
    assert f"[Toy] cannot write {csv_path}: " in line and advice in line
    mine = [index for index, text in enumerate(run.lines) if text.startswith("| mine | ")]
    assert len(mine) == 1 and "| old | " in run.lines[mine[0] - 1]  # the whole table, printed
    assert float(run.lines[mine[0]].split("|")[2]) > 0  # Sm
    for name, data in before.items():
        assert (results / name).read_bytes() == data
    assert sorted(path.name for path in results.iterdir()) == [
        ".result_Toy.csv.lock",
        "result_Toy.csv",
        "result_Toy.md",
    ]


def test_an_unreadable_old_table_is_kept_and_named(tmp_path, run_script):
    """An existing table that is not UTF-8 text is not overwritten: one line, exit 1."""
    make_set(tmp_path, "Toy")
    results = tmp_path / "results"
    results.mkdir()
    (results / "result_Toy.csv").write_bytes(b"\xff\xfe not a table")
    run = run_script(Eval.main, argv(tmp_path, results, "mine"))
    assert run.status == 1
    (line,) = errors(run)
    assert f"{results / 'result_Toy.csv'} is not a results table" in line
    assert any(text.startswith("| mine | ") for text in run.lines)  # the scores, printed
    assert (results / "result_Toy.csv").read_bytes() == b"\xff\xfe not a table"


# ------------------------------------------------------------------------------------------------
# 3. a worker process dies


def test_a_killed_worker_fails_its_dataset_only(tmp_path, run_script, monkeypatch):
    """A worker SIGKILLed while scoring B (as the OOM killer does): one line naming B, A and C
    keep their tables (C on a fresh pool), B gets none, exit 1."""
    for dataset in ("A", "B", "C"):
        make_set(tmp_path, dataset)
    parent, real_read = os.getpid(), evaluator.read_mask

    def read_or_die(path):
        if Path(path).parts[-3:] == ("B", "masks", "2.png") and os.getpid() != parent:
            os.kill(os.getpid(), signal.SIGKILL)
        return real_read(path)

    monkeypatch.setattr(evaluator, "read_mask", read_or_die)  # forked workers inherit it
    results = tmp_path / "results"
    run = run_script(Eval.main, argv(tmp_path, results, "mine", "A,B,C", workers=2))
    assert run.status == 1
    assert errors(run) == [
        "error: [B] scoring failed: a worker process died (likely out of memory; try --workers 1)"
    ]
    assert "[A] 4 scored" in run.lines and "[C] 4 scored" in run.lines
    for dataset in ("A", "C"):
        assert [row["method"] for row in read_csv(results / f"result_{dataset}.csv")] == ["mine"]
    assert not (results / "result_B.csv").exists()


# ------------------------------------------------------------------------------------------------
# 4. masks too small to score


def test_size_rule():
    """pysodmetrics' E-measure divides by (pixels - 1), its S-measure needs two rows and two
    columns (utils/evaluation/metrics.py MIN_MASK_SIDE)."""
    assert metrics.size_problem((1, 1)) == "1x1 pixels, at least 2x2 needed"
    assert metrics.size_problem((1, 9)) == "9x1 pixels, at least 2x2 needed"
    assert metrics.size_problem((9, 1)) is not None
    assert metrics.size_problem((2, 2)) is None


def test_masks_too_small_are_named_and_left_out(tmp_path, run_script):
    """A 1x1, a 1x6 and a 6x1 mask next to four good pairs: one line each, counted in the
    summary, and the table is byte-identical to that of the four good pairs alone."""
    small = {"dot": (1, 1), "row": (1, 6), "column": (6, 1)}
    make_set(tmp_path / "with", "Toy", extra=small)
    make_set(tmp_path / "without", "Toy")
    run = run_script(Eval.main, argv(tmp_path / "with", tmp_path / "with" / "results", "m"))
    alone = run_script(Eval.main, argv(tmp_path / "without", tmp_path / "results", "m"))
    assert run.status == 0 and alone.status == 0
    assert "[Toy] 4 scored; 3 masks too small to score" in run.lines
    for stem, (height, width) in small.items():
        path = tmp_path / "with" / "gt" / "Toy" / "masks" / f"{stem}.png"
        assert run.naming(path) == [
            f"[Toy] too small to score: {path}: {width}x{height} pixels, at least 2x2 needed"
        ]
    table = "result_Toy.csv"
    assert (tmp_path / "with" / "results" / table).read_bytes() == (
        tmp_path / "results" / table
    ).read_bytes()


def test_only_masks_too_small_means_nothing_scored(tmp_path, run_script):
    make_set(tmp_path, "Toy", count=0, extra={"dot": (1, 1)})
    run = run_script(Eval.main, argv(tmp_path, tmp_path / "results", "m"))
    assert run.status == 1
    assert "[Toy] 0 scored; 1 masks too small to score" in run.lines
    assert errors(run) == ["error: nothing could be scored (see the messages above)"]
    assert not (tmp_path / "results" / "result_Toy.csv").exists()
