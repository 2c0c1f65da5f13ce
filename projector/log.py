"""Logging: structlog to stderr, human-readable on a terminal or JSON lines for machines."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable

import structlog

LEVELS = {"quiet": logging.WARNING, "normal": logging.INFO, "verbose": logging.DEBUG}


def configure(log_format: str = "human", verbosity: str = "normal") -> None:
    """Send structlog events to stderr (data goes to stdout) in the chosen format."""
    renderer: structlog.typing.Processor
    if log_format == "json":
        renderer = structlog.processors.JSONRenderer(sort_keys=True)
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(LEVELS[verbosity]),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )


def progress_reporter(*, terminal: bool, every: float = 2.0) -> Callable[[int, int | None], None]:
    """A progress callback: a bar with events/s and ETA on a terminal, else periodic log events."""
    started = time.monotonic()
    last_log = 0.0
    first: int | None = None  # the checkpoint the run started from
    log = structlog.get_logger("projector")

    def report(position: int, total: int | None) -> None:
        nonlocal first, last_log
        now = time.monotonic()
        if first is None:
            first = position
            return
        done = position - first
        elapsed = max(now - started, 1e-9)
        rate = done / elapsed
        eta = (total - position) / rate if total and rate > 0 else None
        if terminal:
            width = 30
            frac = position / total if total else 0.0
            bar = "#" * int(frac * width)
            eta_text = f"ETA {eta:4.0f}s" if eta is not None else ""
            sys.stderr.write(
                f"\r[{bar:<{width}}] {position:>10,}/{total or 0:,} {rate:>9,.0f} ev/s {eta_text}"
            )
            if total and position >= total:
                sys.stderr.write("\n")
            sys.stderr.flush()
        elif now - last_log >= every or (total and position >= total):
            last_log = now
            log.info(
                "replay.progress",
                position=position,
                total=total,
                events_per_s=round(rate),
                eta_s=round(eta, 1) if eta is not None else None,
            )

    return report
