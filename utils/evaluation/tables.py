"""Result tables: ``result_<dataset>.csv`` keeps one row per method across runs (re-running a
method replaces its row); ``result_<dataset>.md`` is the same table in markdown."""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Sequence
from pathlib import Path

from utils.io.atomic import write_bytes_atomic


def _format_csv(value: float | None) -> str:
    return "" if value is None else repr(float(value))


def update_results_table(
    result_path: str | os.PathLike,
    dataset: str,
    method: str,
    metrics: Sequence[str],
    scores: dict[str, float],
) -> str:
    """Put ``method``'s row into ``result_<dataset>.csv`` (replacing an older one) and rewrite
    ``result_<dataset>.md``; other methods' rows stay. Returns the markdown table."""
    csv_path = Path(result_path) / f"result_{dataset}.csv"
    columns = list(metrics)
    rows: dict[str, dict[str, str]] = {}
    if csv_path.is_file():
        with open(csv_path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            old_columns = [name for name in (reader.fieldnames or []) if name != "method"]
            columns += [name for name in old_columns if name not in columns]  # keep old metrics
            for row in reader:
                if row.get("method"):
                    rows[row["method"]] = {key: value or "" for key, value in row.items()}
    rows[method] = {"method": method, **{name: _format_csv(scores[name]) for name in metrics}}

    text = io.StringIO()
    writer = csv.DictWriter(
        text,
        fieldnames=["method", *columns],
        restval="",
        extrasaction="ignore",
        lineterminator="\n",
    )
    writer.writeheader()
    writer.writerows(rows.values())
    write_bytes_atomic(csv_path, text.getvalue().encode("utf-8"))

    table = markdown_table(dataset, columns, list(rows.values()))
    write_bytes_atomic(csv_path.with_suffix(".md"), table.encode("utf-8"))
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
