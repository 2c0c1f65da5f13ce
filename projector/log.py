"""Logging: structlog to stderr, human-readable on a terminal or JSON lines for machines."""

from __future__ import annotations

import json
import logging
import sys
import time

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


def json_line(event: str, level: str, **fields: object) -> str:
    """One JSON log line shaped like structlog's (event, level, timestamp, fields), for the
    lines the CLI writes itself (an error) when `--log-format json` is in force."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
    record = {"event": event, "level": level, "timestamp": f"{stamp}Z", **fields}
    return json.dumps(record, sort_keys=True, ensure_ascii=False)


class Progress:
    """A progress callback ``(position, total)``: a bar with events/s and ETA on a terminal,
    else a ``replay.progress`` log event every EVERY seconds. `end` finishes the bar's line
    (a run stopped by Ctrl-C leaves no half line for the next message to land on)."""

    def __init__(self, *, terminal: bool, every: float = 2.0):
        self.terminal = terminal
        self.every = every
        self.started = time.monotonic()
        self.last_log = 0.0
        self.first: int | None = None  # the checkpoint the run started from
        self.drawn = False  # a bar is on screen without its newline
        self.log = structlog.get_logger("projector")

    def __call__(self, position: int, total: int | None) -> None:
        now = time.monotonic()
        if self.first is None:
            self.first = position
            return
        done = position - self.first
        elapsed = max(now - self.started, 1e-9)
        rate = done / elapsed
        eta = (total - position) / rate if total and rate > 0 else None
        if self.terminal:
            width = 30
            frac = min(position / total, 1.0) if total else 0.0
            bar = "#" * int(frac * width)
            eta_text = f"ETA {eta:4.0f}s" if eta is not None else ""
            sys.stderr.write(
                f"\r[{bar:<{width}}] {position:>10,}/{total or 0:,} {rate:>9,.0f} ev/s {eta_text}"
            )
            self.drawn = True
            if total and position >= total:
                self.end()
            sys.stderr.flush()
        elif now - self.last_log >= self.every or (total and position >= total):
            self.last_log = now
            self.log.info(
                "replay.progress",
                position=position,
                total=total,
                events_per_s=round(rate),
                eta_s=round(eta, 1) if eta is not None else None,
            )

    def end(self) -> None:
        if self.drawn:
            sys.stderr.write("\n")
            sys.stderr.flush()
            self.drawn = False
