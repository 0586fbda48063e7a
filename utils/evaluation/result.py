"""The scores of one method on one dataset, with what went wrong on the way."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

SHOWN_NAMES = 5  # names listed in a one-line summary of missing / extra files


@dataclass
class DatasetResult:
    """Scores of one method on one dataset, with what went wrong on the way."""

    dataset: str
    scores: dict[str, float] = field(default_factory=dict)
    scored: int = 0
    missing: list[str] = field(default_factory=list)  # mask stems without a prediction
    extra: list[str] = field(default_factory=list)  # prediction stems without a mask
    resized: list[str] = field(default_factory=list)  # one message per resized prediction
    unreadable: list[str] = field(default_factory=list)  # one message per unusable file
    too_small: list[str] = field(default_factory=list)  # one message per mask too small to score
    problems: list[str] = field(default_factory=list)  # dataset-level problems
    curves: dict[str, np.ndarray] | None = None
    # why the scores were lost (a worker died, the table could not be written): the caller
    # reports it; None when they were not
    failure: str | None = None

    def report(self, verbose: bool = False) -> list[str]:
        """Human-readable lines: a summary, then every unreadable file and every mask too small
        to score (and more if verbose). A :attr:`failure` is not among them: the caller reports
        it."""
        parts = [f"{self.scored} scored"]
        if self.missing:
            parts.append(f"{len(self.missing)} missing predictions ({_names(self.missing)})")
        if self.extra:
            parts.append(f"{len(self.extra)} extra predictions ({_names(self.extra)})")
        if self.resized:
            parts.append(f"{len(self.resized)} predictions resized to their mask size")
        if self.unreadable:
            parts.append(f"{len(self.unreadable)} unreadable")
        if self.too_small:
            parts.append(f"{len(self.too_small)} masks too small to score")
        lines = [f"[{self.dataset}] " + "; ".join(parts)]
        lines += [f"[{self.dataset}] {problem}" for problem in self.problems]
        lines += [f"[{self.dataset}] unreadable: {message}" for message in self.unreadable]
        lines += [f"[{self.dataset}] too small to score: {message}" for message in self.too_small]
        if verbose:
            lines += [f"[{self.dataset}] resized: {message}" for message in self.resized]
            lines += [f"[{self.dataset}] missing prediction: {stem}" for stem in self.missing]
            lines += [f"[{self.dataset}] extra prediction: {stem}" for stem in self.extra]
        return lines


def _names(stems: Sequence[str]) -> str:
    shown = ", ".join(stems[:SHOWN_NAMES])
    return shown + (", ..." if len(stems) > SHOWN_NAMES else "")
