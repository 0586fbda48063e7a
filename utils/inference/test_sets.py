"""Write the predicted maps of the test sets (architecture §16.3): run/Test.py and Expr.py use it.

    predictor = Predictor.from_config(cfg)                       # utils.inference.predictor
    reports = write_test_predictions(cfg["Test"], cfg["Eval"]["pred_root"], predictor)

For each set of ``Test.Dataset.sets`` the pairs are listed by the rules of the test dataset
type (:mod:`data.pairs`, without torch, so an exported engine's run never imports it: as in the
reference, every image needs its mask; pairs whose sizes differ are dropped with a warning)
and ``<pred_root>/<set>/<image stem>.png`` is written for every image: the Predictor's map at
the image's original size, as floor(m·255). Maps already on disk are kept unless ``overwrite``;
since every PNG is written atomically (utils.io.images), a map that exists is complete, so an
interrupted run resumes by running it again (and deletes the temporary files a kill left in
``<pred_root>/<set>/``). An image that cannot be decoded is reported by
name and skipped. The maps go through the pipeline Inference uses (utils.inference.pipeline,
output type ``map``): decoding and the test transforms of the next images run in a thread while
the network works on the current one.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from data.pairs import dataset_needs_masks, list_pairs
from data.sources import ImageMedia
from utils.inference.compose import parse_output_type
from utils.inference.outputs import Job
from utils.inference.pipeline import Runner, Settings
from utils.io.atomic import remove_stale_temporaries

if TYPE_CHECKING:  # the torch engine's; an exported engine's ExportedPredictor works the same
    from utils.inference.predictor import Predictor

logger = logging.getLogger(__name__)


@dataclass
class SetReport:
    """What happened to one test set."""

    name: str
    total: int = 0  # pairs listed
    written: int = 0
    existing: int = 0  # kept from an earlier run
    failed: list[str] = field(default_factory=list)  # one line per unreadable file
    error: str | None = None  # the set could not be listed at all

    def summary(self) -> str:
        """One line for the log."""
        if self.error:
            return f"[{self.name}] error: {self.error}"
        parts = [f"{self.written} written", f"{self.existing} already there"]
        if self.failed:
            names = "; ".join(self.failed[:3]) + (" ..." if len(self.failed) > 3 else "")
            parts.append(f"{len(self.failed)} unreadable ({names})")
        return f"[{self.name}] {self.total} images: " + ", ".join(parts)


def write_set(
    test_cfg: Mapping,
    name: str,
    out_dir: Path,
    predictor: Predictor,
    *,
    overwrite: bool = False,
    progress: bool = True,
) -> SetReport:
    """Write the maps of one test set into ``out_dir``; see the module docstring."""
    report = SetReport(name)
    section = test_cfg["Dataset"]
    try:
        needs_masks = dataset_needs_masks(section)
        listing = list_pairs(section["root"], name, masks_required=needs_masks, on_error="skip")
    except ValueError as error:  # missing folder, image without a mask, ...
        report.error = str(error)
        return report
    report.failed += listing.failures
    report.total = len(listing.pairs) + len(listing.failures)
    remove_stale_temporaries(out_dir)
    jobs = [Job(ImageMedia(pair.image), out_dir / f"{pair.name}.png") for pair in listing.pairs]
    pending = [job for job in jobs if not job.already_done(overwrite)]
    report.existing = len(jobs) - len(pending)

    def skipped(job: Job, message: str) -> None:
        report.failed.append(message)
        logger.warning("skipped %s", message)

    settings = Settings(parse_output_type("map"), overwrite=overwrite, progress=progress)
    runner = Runner(predictor, settings, on_failure=skipped)
    report.written, _ = runner.run(pending, desc=name, done_before=report.existing)
    return report


def predictions_problem(reports: list[SetReport]) -> str | None:
    """Why a Test run failed (a set could not be listed, or no map exists at all), or None."""
    failed = [report.name for report in reports if report.error]
    if failed:
        return f"test set(s) {', '.join(failed)} could not be read (see the messages above)"
    if not any(report.written or report.existing for report in reports):
        return "no map was written and none existed (see the messages above)"
    return None


def write_test_predictions(
    test_cfg: Mapping,
    pred_root: str | Path,
    predictor: Predictor,
    *,
    overwrite: bool = False,
    progress: bool = True,
) -> list[SetReport]:
    """:func:`write_set` for every set of ``test_cfg["Dataset"]["sets"]`` into
    ``<pred_root>/<set>/``; logs one summary line per set and returns the reports. A write
    that fails for lack of space or permission raises utils.io.atomic.OutputError (the maps
    written are kept)."""
    reports = []
    for name in test_cfg["Dataset"]["sets"]:
        out_dir = Path(pred_root) / name
        report = write_set(
            test_cfg, name, out_dir, predictor, overwrite=overwrite, progress=progress
        )
        logger.info(report.summary() + ("" if report.error else f" -> {out_dir}"))
        reports.append(report)
    return reports
