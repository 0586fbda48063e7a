"""What every script shares: its common flags, the console log, and one mapping from errors to
one-line messages and exit codes.

    def main(argv=None) -> int:
        args = parse_args(argv)                    # light imports only: --help answers at once
        return run_cli(_run, args, interrupted="interrupted: run the same command again")

    def _run(args) -> int:
        from utils.engine import train             # heavy imports after parsing
        with exit_on_error(2):                     # config, checkpoint, device problems: exit 2
            cfg = config_from_args(args, require=("Model", "Train"))
        ...

Console: library modules log through ``logging.getLogger(__name__)``; :func:`setup_logging`
shows INFO records as plain lines on stdout and WARNING/ERROR records as ``warning: ...`` /
``error: ...`` on stderr, both above any tqdm progress bar. Exit codes: 0 done, 1 a run error,
2 a config/argument/setup error, 130 Ctrl-C.

This module imports nothing heavy (no torch, no OpenCV), so argument parsing stays instant.
"""

from __future__ import annotations

import argparse
import logging
import shlex
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

EXIT_ERROR = 1
EXIT_SETUP = 2
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 128 + signal.SIGTERM
# The project's interpreter as README writes it: commands we print for the user to run again.
PYTHON = ".venv/bin/python"

logger = logging.getLogger(__name__)


class ScriptError(Exception):
    """Stop the script with ``code`` after printing ``message`` as one ``error: ...`` line."""

    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code
        self.message = " ".join(str(message).split()) or "error"


# What a run reports as one line rather than a traceback: bad input or environment (ValueError
# covers ConfigError, CheckpointError, ImageReadError...; OSError covers missing and unwritable
# files). Programming errors still show their traceback.
USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, OSError)


@contextmanager
def exit_on_error(
    code: int, errors: tuple[type[BaseException], ...] = USER_ERRORS
) -> Iterator[None]:
    """Turn ``errors`` raised inside the block into :class:`ScriptError` with ``code``."""
    try:
        yield
    except errors as error:
        raise ScriptError(code, str(error) or type(error).__name__) from None


# Loggers whose INFO lines are shown: the project's own (and a script run as __main__); other
# libraries show only their warnings and errors.
OWN_LOGGERS = ("lib", "utils", "data", "run", "bench", "Expr", "__main__")


class _ConsoleHandler(logging.Handler):
    """INFO as plain lines on stdout, WARNING and above prefixed on stderr, above tqdm bars."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or record.name.split(".")[0] in OWN_LOGGERS

    def emit(self, record: logging.LogRecord) -> None:
        try:
            from tqdm import tqdm

            message = record.getMessage()
            if record.levelno >= logging.WARNING:
                tqdm.write(f"{record.levelname.lower()}: {message}", file=sys.stderr)
            else:
                tqdm.write(message, file=sys.stdout)
        except Exception:  # a closed stream must not stop the run
            self.handleError(record)


def setup_logging() -> None:
    """Install the console handler on the root logger once, at level INFO."""
    root = logging.getLogger()
    if not any(isinstance(handler, _ConsoleHandler) for handler in root.handlers):
        root.addHandler(_ConsoleHandler())
    root.setLevel(logging.INFO)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread like Ctrl-C, so that every ``finally`` runs (open
    outputs are closed and their temporary files removed)."""


def _terminate(signum: int, frame: object) -> None:
    raise Terminated


def run_cli(
    run: Callable[[argparse.Namespace], int],
    args: argparse.Namespace,
    *,
    interrupted: str = "interrupted",
) -> int:
    """Call ``run(args)`` with the console log set up; map :class:`ScriptError` to its line and
    code, Ctrl-C to ``interrupted`` and 130, SIGTERM to the same line and 143. Returns the exit
    status."""
    setup_logging()
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminate) if main_thread else None
    try:
        return run(args)
    except ScriptError as stop:
        logger.error(stop.message)
        return stop.code
    except KeyboardInterrupt as stop:
        logger.error(interrupted)
        return EXIT_TERMINATED if isinstance(stop, Terminated) else EXIT_INTERRUPTED
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)


def parser_for(doc: str, *, summary_paragraph: int = 0) -> argparse.ArgumentParser:
    """An argument parser whose description is paragraph ``summary_paragraph`` of ``doc`` and
    whose epilog is the rest of it, shown as written."""
    paragraphs = doc.strip().split("\n\n")
    return argparse.ArgumentParser(
        description=paragraphs[summary_paragraph],
        epilog="\n\n".join(p for i, p in enumerate(paragraphs) if i != summary_paragraph),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def add_device_argument(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """``--device``: cpu, cuda, cuda:N, mps (default: the best available)."""
    parser.add_argument("--device", help="cpu, cuda, cuda:N, mps (default: the best available)")


def add_progress_argument(parser: argparse.ArgumentParser) -> None:
    """``--no-progress``: no progress bars (logs and CI)."""
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def add_speed_arguments(parser: argparse.ArgumentParser) -> None:
    """``--precision``, ``--no-optimize`` and ``--compile`` for the scripts that predict."""
    parser.add_argument(
        "--precision",
        choices=("bf16", "fp16", "fp32", "int8"),
        help="network precision (default: the config's Model.precision, fp32); bf16 on CPUs with "
        "AVX512-BF16/AMX and on GPUs, fp16 on GPUs; int8: an export's int8 files "
        "(run/Export.py --int8) with --engine openvino",
    )
    parser.add_argument(
        "--no-optimize",
        action="store_true",
        help="run the plain model (no BatchNorm folding or channels-last)",
    )
    parser.add_argument(
        "--compile", action="store_true", help="torch.compile the network (slow first image)"
    )


def add_engine_arguments(parser: argparse.ArgumentParser) -> None:
    """``--engine`` and ``--exported`` for the scripts that predict (utils.inference.loading)."""
    parser.add_argument(
        "--engine",
        choices=("torch", "onnxruntime", "openvino"),
        help="what runs the network (default: torch; with --exported: the fastest exported "
        "engine, openvino)",
    )
    parser.add_argument(
        "--exported",
        metavar="PATH",
        help="an exported model (run/Export.py): its folder or one file (default with a "
        "non-torch engine: <checkpoint dir>/export/<checkpoint stem>/)",
    )


def speed_options(args: argparse.Namespace) -> dict:
    """The ``Predictor.from_config`` keywords of :func:`add_speed_arguments`' flags."""
    return {
        "precision": args.precision,
        "optimize": not args.no_optimize,
        "compile": args.compile,
    }


def add_training_arguments(parser: argparse.ArgumentParser) -> None:
    """``--resume``, ``--seed``, ``--device``, ``--no-progress`` (run/Train.py and Expr.py)."""
    parser.add_argument(
        "--resume", action="store_true", help="continue from <checkpoint_dir>/state.pth"
    )
    parser.add_argument("--seed", type=int, help="random seed (overrides Train.seed)")
    add_device_argument(parser)
    add_progress_argument(parser)


def command_line(script: str | Path, argv: list[str], extra: tuple[str, ...] = ()) -> str:
    """The command that runs ``script`` with ``argv`` (plus ``extra`` flags not already there)
    with the project's interpreter, quoted for a shell."""
    args = list(argv) + [flag for flag in extra if flag not in argv]
    return shlex.join([PYTHON, str(script), *args])


def script_argv(argv: list[str] | None) -> list[str]:
    """``argv``, or this process's command-line arguments when None."""
    return list(sys.argv[1:] if argv is None else argv)
