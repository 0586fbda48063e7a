"""Result tables: ``result_<dataset>.csv`` keeps one row per method across runs (re-running a
method replaces its row); ``result_<dataset>.md`` is the same table in markdown.

Several Eval runs may finish at the same time into one result folder: each reads, merges and
rewrites a table under a file lock, so no run's row is lost, and writes the .csv and the .md
atomically and together, so the tables on disk are always whole (the previous ones when a write
fails). The lock file,
``.result_<dataset>.csv.lock`` beside the table, is ours: hidden, empty, kept between runs (its
lock is released when the run ends, however it ends) and harmless to delete when no run is going.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from filelock import FileLock

from utils.io.atomic import OutputError, atomic_output, check_output_folder, write_advice
from utils.io.files import file_problem

# A run holds the lock for one read and two small writes: a wait this long means a run is stuck
# (e.g. on a network file system), and the scores are printed anyway.
LOCK_TIMEOUT_S = 120.0


class ResultFolderError(OSError):
    """The result folder cannot hold the tables: not a folder, cannot be created, not writable,
    full. ``str()`` is one line naming the folder and what to do."""


def prepare_result_folder(result_path: str | os.PathLike) -> Path:
    """Create ``result_path`` if needed and check that files can be written there
    (utils.io.atomic.check_output_folder), so that a bad result folder stops a run before any
    scoring; returns it as a Path. Raises :class:`ResultFolderError`."""
    try:
        return check_output_folder(result_path, "the result tables")
    except OutputError as error:
        raise ResultFolderError(
            f"result folder {error}; set Eval.result_path to a folder you can write to"
        ) from None


def table_path(result_path: str | os.PathLike, dataset: str) -> Path:
    """``<result_path>/result_<dataset>.csv``."""
    return Path(result_path) / f"result_{dataset}.csv"


def write_problem(path: str | os.PathLike, error: OSError) -> str:
    """One line saying that ``path`` could not be written and what to do; the caller has
    printed what it was writing and the previous file is kept."""
    return (
        f"cannot write {path}: {write_advice(error)}; the scores are printed above and the "
        "previous file is kept: run the same command again once fixed"
    )


def _format_csv(value: float | None) -> str:
    return "" if value is None else repr(float(value))


def method_row(method: str, metrics: Sequence[str], scores: dict[str, float]) -> dict[str, str]:
    """``method``'s table row: the method name and each metric's value as text."""
    return {"method": method, **{name: _format_csv(scores[name]) for name in metrics}}


def _read_rows(csv_path: Path) -> tuple[list[str], dict[str, dict[str, str]]]:
    """The metric columns and the rows by method of an existing table (none when it is absent).

    ValueError (naming it) when something other than a table of ours is there: it is left alone.
    """
    if not os.path.lexists(csv_path):
        return [], {}
    problem = file_problem(csv_path)
    if problem is not None:
        raise ValueError(f"{csv_path} {problem}: move it away and run the same command again")
    rows: dict[str, dict[str, str]] = {}
    try:
        with open(csv_path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            columns = [name for name in (reader.fieldnames or []) if name != "method"]
            for row in reader:
                if row.get("method"):
                    rows[row["method"]] = {key: value or "" for key, value in row.items() if key}
    except (UnicodeDecodeError, csv.Error) as error:
        raise ValueError(
            f"{csv_path} is not a results table ({error}): move it away and run the same "
            "command again"
        ) from None
    return columns, rows


def _csv_text(columns: Sequence[str], rows: Iterable[dict[str, str]]) -> str:
    """The table as CSV text: a ``method`` column, then ``columns`` (empty where a row has none)."""
    text = io.StringIO()
    writer = csv.DictWriter(
        text,
        fieldnames=["method", *columns],
        restval="",
        extrasaction="ignore",
        lineterminator="\n",
    )
    writer.writeheader()
    writer.writerows(rows)
    return text.getvalue()


def update_results_table(
    result_path: str | os.PathLike,
    dataset: str,
    method: str,
    metrics: Sequence[str],
    scores: dict[str, float],
    show: Callable[[str], object] = lambda table: None,
) -> str:
    """Put ``method``'s row into ``result_<dataset>.csv`` (replacing an older one) and rewrite
    ``result_<dataset>.md``; other methods' rows stay. Returns the markdown table.

    Under the table's lock (see the module docstring): read, merge, ``show(table)`` (before
    anything is written, so the caller can print the scores even when writing fails), write.
    Raises OSError when the lock or a file cannot be written (the previous files stay) and
    ValueError when the existing table cannot be read (it is left as it is).
    """
    csv_path = table_path(result_path, dataset)
    csv_path.parent.mkdir(parents=True, exist_ok=True)  # the lock file goes there first
    with FileLock(csv_path.with_name(f".{csv_path.name}.lock"), timeout=LOCK_TIMEOUT_S):
        old_columns, rows = _read_rows(csv_path)
        columns = list(metrics) + [name for name in old_columns if name not in metrics]
        rows[method] = method_row(method, metrics, scores)
        table = markdown_table(dataset, columns, list(rows.values()))
        show(table)
        # both files or neither: a failed write leaves the previous pair as it was
        with (
            atomic_output(csv_path) as csv_tmp,
            atomic_output(csv_path.with_suffix(".md")) as md_tmp,
        ):
            csv_tmp.write_bytes(_csv_text(columns, rows.values()).encode("utf-8"))
            md_tmp.write_bytes(table.encode("utf-8"))
    return table


def markdown_table(dataset: str, columns: Sequence[str], rows: Sequence[dict[str, str]]) -> str:
    """A markdown table, one row per method, values with 3 decimals."""

    def cell(value: str) -> str:
        try:
            return f"{float(value):.3f}"
        except ValueError:
            return value or "-"

    lines = [
        f"**{dataset}**",
        "",
        "| method | " + " | ".join(columns) + " |",
        "|---|" + "---:|" * len(columns),
    ]
    for row in rows:
        values = [cell(row.get(name, "")) for name in columns]
        lines.append(f"| {row['method']} | " + " | ".join(values) + " |")
    return "\n".join(lines) + "\n"
