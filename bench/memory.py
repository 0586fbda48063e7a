"""Peak resident memory of this process (Linux), for tests and benchmarks that report it."""

from __future__ import annotations

from pathlib import Path

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark of this process; False where that is not possible."""
    try:
        _CLEAR_REFS.write_text("5")
        return True
    except OSError:
        return False


def peak_rss_mb() -> float:
    """Peak resident set size (VmHWM) of this process in MiB since start or the last reset."""
    return _status_mib("VmHWM")


def rss_mb() -> float:
    """Current resident set size (VmRSS) of this process in MiB."""
    return _status_mib("VmRSS")


def _status_mib(field: str) -> float:
    for line in _STATUS.read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise OSError(f"{field} not reported by /proc/self/status")
