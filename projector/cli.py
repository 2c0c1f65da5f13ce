"""The `projector` command: a thin click wrapper over the library.

Each command parses its options, calls one library function, prints data to stdout
(human text, or JSON with --json) and maps errors to exit codes: 1 for a failed check or
a bad input (`Error: ...` on stderr, one line), 2 for usage errors, 75 when the source
stayed locked by another process (or kept changing) past --lock-timeout, or another
projector is writing the target (try again later), 130/143 after SIGINT/SIGTERM, 141
when stdout is a pipe closed early (`| head`).
Under --json an error is also a JSON object on stdout; under --log-format json every
stderr line is JSON.
"""

from __future__ import annotations

import io
import json
import os
import signal
import sys
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from projector import __version__
from projector.errors import command_line

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}
#: projector.replay.DEFAULT_BATCH, repeated so that `--help` need not import the library.
DEFAULT_BATCH = 10000
#: The exit status of a process killed by SIGPIPE, as a shell reports it.
EXIT_PIPE = 128 + signal.SIGPIPE
EXIT_TERMINATED = 128 + signal.SIGTERM
#: events.sqlite_source.DEFAULT_LOCK_TIMEOUT, repeated likewise.
DEFAULT_LOCK_TIMEOUT = 10.0
#: sysexits.h EX_TEMPFAIL: the source was locked or kept changing; a later try may work.
#: EX_TEMPFAIL (sysexits.h): another process holds the source or the target; try later.
EXIT_TEMPFAIL = 75


def _emit(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False, sort_keys=False))


class Failure(click.ClickException):
    """An error to report on one line with its exit code (`Error: ...`, `Interrupted: ...`).

    KIND names it in JSON (the library exception's class); REPORTED means the command
    already said it on stdout (a --strict failure under --json), so only stderr gets it.
    """

    def __init__(
        self,
        message: str,
        exit_code: int = 1,
        *,
        kind: str = "Error",
        prefix: str = "Error",
        reported: bool = False,
    ):
        super().__init__(message)
        self.exit_code = exit_code  # type: ignore[misc]  # click's is a class default
        self.kind = kind
        self.prefix = prefix
        self.reported = reported

    def show(self, file: Any = None) -> None:
        click.echo(f"{self.prefix}: {self.format_message()}", err=True)


@contextmanager
def _errors() -> Iterator[None]:
    """Map library errors (and any OSError from a path) to one-line failures."""
    from events.errors import EventsError, SourceBusy
    from projector.errors import Busy, Interrupted, ProjectorError

    try:
        yield
    except Interrupted as exc:
        raise Failure(
            str(exc), _Signals.code or 130, kind="Interrupted", prefix="Interrupted"
        ) from None
    except (SourceBusy, Busy) as exc:  # another process's: try again later
        raise Failure(str(exc), EXIT_TEMPFAIL, kind=type(exc).__name__) from None
    except (ProjectorError, EventsError) as exc:
        raise Failure(str(exc), kind=type(exc).__name__) from None
    except BrokenPipeError:
        raise
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        raise Failure(f"{where}{exc.strerror or exc}", kind=type(exc).__name__) from None
    except KeyboardInterrupt:
        raise Failure("stopped by Ctrl-C", 130, kind="Interrupted", prefix="Interrupted") from None


class _Signals:
    """SIGINT/SIGTERM set a flag; the replay loop stops at the next batch boundary."""

    code = 0

    @classmethod
    def install(cls) -> Callable[[], bool]:
        cls.code = 0

        def handler(signum: int, _frame: Any) -> None:
            cls.code = 128 + signum

        signal.signal(signal.SIGINT, handler)
        signal.signal(signal.SIGTERM, handler)
        return lambda: cls.code != 0

    @staticmethod
    def terminate() -> Any:
        """Make SIGTERM raise `_Terminated`; return the handler it replaced, or None where
        none can be set (not the main thread)."""

        def handler(_signum: int, _frame: Any) -> None:
            raise _Terminated

        try:
            return signal.signal(signal.SIGTERM, handler)
        except ValueError:
            return None


class _Terminated(BaseException):
    """SIGTERM, outside replay and resume: not an error (click would take a
    KeyboardInterrupt for Ctrl-C and say so), it ends the command as it goes up."""


def _flag_value(args: Sequence[str], name: str) -> str | None:
    """The last value given to option NAME in ARGS (``--name V`` or ``--name=V``)."""
    found = None
    for index, arg in enumerate(args):
        if arg == "--":
            break
        if arg == name and index + 1 < len(args):
            found = args[index + 1]
        elif arg.startswith(name + "="):
            found = arg.split("=", 1)[1]
    return found


def _silence_stdout() -> None:
    """After EPIPE, point stdout at /dev/null so the interpreter's final flush is quiet."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, io.UnsupportedOperation):
        pass


class ProjectorGroup(click.Group):
    """The command group: reports every error one way (see the module docstring)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except BrokenPipeError:
            # click itself would exit 1 with nothing said; a closed pipe is the reader's
            # choice (`| head`), so exit as a process killed by SIGPIPE does, quietly.
            _silence_stdout()
            sys.exit(EXIT_PIPE)

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        argv = list(sys.argv[1:] if args is None else args)
        # SIGTERM stops a command where it is, through its clean-up (an export's or a
        # hand-off's temporary file: `finally` blocks), exit 143; replay and resume stop
        # at a batch boundary instead (`_Signals.install`).
        previous = _Signals.terminate()
        try:
            value = super().main(argv, prog_name, complete_var, standalone_mode=False, **extra)
        except _Terminated:
            if not standalone_mode:
                raise
            _report(
                Failure(
                    "stopped by SIGTERM", EXIT_TERMINATED, kind="Interrupted", prefix="Interrupted"
                ),
                argv,
            )
            sys.exit(EXIT_TERMINATED)
        except click.ClickException as exc:
            if not standalone_mode:
                raise
            _report(exc, argv)
            sys.exit(exc.exit_code)
        except click.Abort:
            if not standalone_mode:
                raise
            _report(Failure("stopped", 130, kind="Interrupted", prefix="Interrupted"), argv)
            sys.exit(130)
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
        if standalone_mode:
            sys.exit(value if isinstance(value, int) else 0)
        return value


def _report(exc: click.ClickException, argv: Sequence[str]) -> None:
    """Say EXC on stderr (a JSON line under --log-format json) and, under --json, as a
    JSON object on stdout."""
    from projector.log import json_line

    kind = getattr(exc, "kind", type(exc).__name__)
    message = exc.format_message()
    try:
        if _flag_value(argv, "--log-format") == "json":
            click.echo(
                json_line(
                    "error", "error", message=message, errorType=kind, exitCode=exc.exit_code
                ),
                err=True,
            )
        else:
            exc.show()
        if "--json" in argv[: argv.index("--") if "--" in argv else len(argv)] and not getattr(
            exc, "reported", False
        ):
            _emit({"error": message, "errorType": kind, "exitCode": exc.exit_code})
    except BrokenPipeError:
        _silence_stdout()


def _configure(ctx: click.Context) -> None:
    from projector.log import configure

    obj = ctx.find_root().ensure_object(dict)
    verbosity = "quiet" if obj.get("quiet") else "verbose" if obj.get("verbose") else "normal"
    configure(obj.get("log_format", "human"), verbosity)


def _late_global(ctx: click.Context, param: click.Parameter, value: Any) -> None:
    """A global option given after the command: it overrides the one before it."""
    if value is None or value is False:
        return
    obj = ctx.find_root().ensure_object(dict)
    obj[param.name or ""] = value
    _configure(ctx)


def _global_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """-q, -v and --log-format, accepted after the command too (hidden in its help)."""
    for decorator in (
        click.option(
            "--log-format",
            type=click.Choice(["human", "json"]),
            default=None,
            expose_value=False,
            is_eager=True,
            hidden=True,
            callback=_late_global,
        ),
        click.option(
            "-q", "--quiet", is_flag=True, expose_value=False, hidden=True, callback=_late_global
        ),
        click.option(
            "-v", "--verbose", is_flag=True, expose_value=False, hidden=True, callback=_late_global
        ),
    ):
        fn = decorator(fn)
    return fn


def _command(name: str | None = None) -> Callable[[Callable[..., Any]], click.Command]:
    """A subcommand of `projector` that takes the global options as well."""

    def make(fn: Callable[..., Any]) -> click.Command:
        return cli.command(name, context_settings=CONTEXT)(_global_options(fn))

    return make


def _catalog_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--catalog",
        metavar="NAME|DIR",
        help="The app's catalog: a bundled name (ai-desk, todomvc, todo-0.3.1) or a catalog "
        "folder (docs/catalogs.md; ./NAME for a folder named as a bundled one). Default: the "
        "one the target recorded, else the bundled catalog that knows the log's event names "
        "(refused when its handlers cover fewer than half of them).",
    )(fn)


def _load_catalog(value: str | None) -> Any:
    """The catalog --catalog names (None without one), checked whole (`_checked`)."""
    if value is None:
        return None
    from events.catalog import resolve_catalog

    return _checked(resolve_catalog(value))


def _checked(catalog: Any) -> Any:
    """CATALOG, its projection compiled (tables, views, handlers) when it has one, so
    that every command refuses a broken catalog as replay does (CatalogError)."""
    from projector.handlers import compile_catalog

    if catalog.has_projection:
        compile_catalog(catalog)
    return catalog


class FilePath(click.Path):
    """A database or export file a command names (a target, an app database, an export),
    as a `Path`. Refused in one line, naming what to give instead: a name that ends in a
    slash, ``/.`` or ``/..`` (a folder, which click and pathlib read as the folder's own
    name: a file of that name was written, or ``t.db/`` taken for ``t.db``), an empty
    name, and ``-`` unless the command writes to stdout (a file named '-' was written).
    EXAMPLE is the file name its messages suggest."""

    def __init__(self, example: str, **kw: Any):
        super().__init__(path_type=Path, **kw)
        self.example = example

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        text = os.fspath(value) if isinstance(value, (str, os.PathLike)) else ""
        if text == "":
            self.fail(f"an empty name: name the file, e.g. ./{self.example}", param, ctx)
        if text == "-" and not self.allow_dash:  # stdout: no place for a database
            self.fail(f"'-' is no file here: name the file, e.g. ./{self.example}", param, ctx)
        seps = "/" + os.sep
        last = text.rstrip(seps).rsplit("/", 1)[-1] if isinstance(text, str) else ""
        # `out/`, and `out/.` or `out/..`, which pathlib reads as `out`: folders by name.
        folder = text.endswith(tuple(seps)) or (last in (".", "..") and "/" in text)
        if isinstance(text, str) and folder and text.strip(seps):
            named = text.rstrip(seps)
            if last not in (".", "..") and os.path.isfile(named):
                self.fail(f"{text!r}: {named} is a file; name it without the slash", param, ctx)
            self.fail(
                f"{text!r} names a folder; name the file in it, e.g. {named}/{self.example}",
                param,
                ctx,
            )
        path = super().convert(value, param, ctx)
        if text != "-" and str(path) == "-":  # `./-`: the file named '-', not stdout
            return Path(os.path.abspath(text))
        return path


json_option = click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
_lock_timeout_option = click.option(
    "--lock-timeout",
    type=click.FloatRange(min=0),
    default=DEFAULT_LOCK_TIMEOUT,
    show_default=True,
    envvar="PROJECTOR_LOCK_TIMEOUT",
    metavar="SECONDS",
    help="How long the source may stay locked by another process (or keep changing under "
    "every read) before giving up with exit code 75 (also: PROJECTOR_LOCK_TIMEOUT).",
)
_format_version_option = click.option(
    "--format-version",
    type=click.Choice(["4", "6"]),
    help="Read the store directory's eventlog@N.db: 6 (LiveStore 0.4.x) or 4 (0.3.x). "
    "Default: the newest; needed when an older one holds events the newest lacks, or the "
    "newest is a format this version cannot read.",
)


def _source_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    return _format_version_option(_lock_timeout_option(fn))


def _open(source: Path, lock_timeout: float, format_version: str | None) -> Any:
    from events.sources import open_source

    version = int(format_version) if format_version else None
    return open_source(source, lock_timeout=lock_timeout, format_version=version)


def _example_line(example: dict[str, Any]) -> str:
    """A parked example's reason, led by its event as ``eId (#position, name)`` whatever its
    kind: a held event's reason names none, an integrity break's names it without its
    position (its recorded text, part of the target's digest, is left as it is)."""
    reason, event_id, name = str(example["reason"]), example["eventId"], example["name"]
    lead = f"{event_id} (#{example['position']:,}, {name}): "
    if example["kind"] == "held":
        return lead + reason
    bare = f"{event_id} ({name}): "
    return lead + reason[len(bare) :] if reason.startswith(bare) else reason


def _print_warnings(warnings: list[dict[str, Any]]) -> None:
    for warning in warnings:
        where = f" at #{warning['position']:,}" if "position" in warning else ""
        click.echo(f"  warning {warning['kind']}{where}: {warning['detail']}")


_strict_keys_option = click.option(
    "--strict-keys",
    is_flag=True,
    help="Reject args holding a key their schema does not declare. By default such a key "
    "is dropped with an excess-key warning, as LiveStore does (Effect's Struct ignores it).",
)
_batch_option = click.option(
    "--batch-size",
    type=click.IntRange(1, 100_000),
    default=DEFAULT_BATCH,
    show_default=True,
    help="Events per transaction (and per checkpoint). A batch is held in memory, "
    "about 2 KB per event (the writer process on a second core adds about 35 MB).",
)


@click.group(cls=ProjectorGroup, context_settings=CONTEXT)
@click.version_option(__version__, "--version", prog_name="projector")
@click.option(
    "--log-format",
    type=click.Choice(["human", "json"]),
    default="human",
    show_default=True,
    help="Format of the log lines written to stderr.",
)
@click.option(
    "-q", "--quiet", is_flag=True, help="Only warnings and errors on stderr; no progress."
)
@click.option("-v", "--verbose", is_flag=True, help="Debug log lines (one per batch).")
@click.pass_context
def cli(ctx: click.Context, log_format: str, quiet: bool, verbose: bool) -> None:
    """Migrate a LiveStore event log into plain relational SQLite tables, verifiably.

    SOURCE is a LiveStore store directory, an eventlog@N.db file, a `livestore sync
    export` JSON file or NDJSON (one event per line); the format is detected from the
    content and the source is only ever opened read-only. The options below may also
    follow the command (`projector replay ... -q`).

    \b
    Example:
      projector validate fixtures/small/ai-desk
      projector replay fixtures/small/ai-desk out/app.db
      projector verify out/app.db --against fixtures/small/ai-desk
    """
    # A hostile log's names and keys can hold lone surrogates, which UTF-8 cannot encode:
    # print them as \udXXX escapes (also valid JSON) rather than die on a UnicodeEncodeError.
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="backslashreplace")
    obj = ctx.ensure_object(dict)
    obj.update(log_format=log_format, quiet=quiet, verbose=verbose)
    _configure(ctx)


def _quiet(ctx: click.Context) -> bool:
    return bool(ctx.find_root().ensure_object(dict).get("quiet"))


@_command()
@click.argument("source", type=click.Path(path_type=Path))
@_source_options
@json_option
def inspect(source: Path, lock_timeout: float, format_version: str | None, as_json: bool) -> None:
    """Describe SOURCE: format and version, store id, event count, seq range, names,
    rebase generations, and holes in its history (warnings with positions).

    \b
    Example:
      projector inspect fixtures/small/ai-desk --json
    """
    from events.summary import summarize

    with _errors():
        src = _open(source, lock_timeout, format_version)
        try:
            info = summarize(src)
        finally:
            src.close()
    if as_json:
        _emit(info)
        return
    version = f" v{info['formatVersion']}" if info["formatVersion"] is not None else ""
    click.echo(f"source:      {info['source']}")
    click.echo(f"format:      {info['format']}{version}")
    click.echo(f"store id:    {info['storeId'] or '(unknown)'}")
    click.echo(f"events:      {info['events']:,} ({info['clientOnly']:,} client-only)")
    if not info["events"]:
        click.echo("seq range:   (no events)")
    else:
        click.echo(f"seq range:   {info['firstEventId']} .. {info['lastEventId']}")
    if "readFrom" in info:
        click.echo(f"read from:   {info['readFrom']}")
    if info["events"]:
        click.echo(f"generations: {_generations(info)}")
        click.echo("by name:")
    for name, count in info["byName"].items():
        click.echo(f"  {count:>9,}  {name}")
    if info["warnings"]:
        kinds = ", ".join(f"{n:,} {k}" for k, n in info["warningsByKind"].items())
        click.echo(f"warnings:    {kinds}")
        _print_warnings(info["warningExamples"])


def _generations(info: dict[str, Any]) -> str:
    """The rebase generations line of `inspect` for a log with events (`summarize`'s INFO):
    counts per generation, else why there are none: format 4 and a sync export have no
    rebase generation; an NDJSON line may give one (`seqNum.rebaseGeneration`) or not."""
    from events.sources import KIND_NDJSON

    generations = info["rebaseGenerations"]
    if generations:
        return ", ".join(f"r{g}: {n:,}" for g, n in generations.items())
    if info["format"] == KIND_NDJSON:
        return "(none recorded in this file)"
    return "(none recorded: this format has no rebase generation)"


@_command()
@click.argument("source", type=click.Path(path_type=Path))
@_catalog_option
@click.option(
    "--examples",
    type=click.IntRange(min=0),
    default=10,
    show_default=True,
    help="How many problems to show.",
)
@_source_options
@_strict_keys_option
@json_option
def validate(
    source: Path,
    catalog: str | None,
    examples: int,
    lock_timeout: float,
    format_version: str | None,
    strict_keys: bool,
    as_json: bool,
) -> None:
    """Check every event of SOURCE against its JSON Schema; exit 1 if any is invalid or unknown.

    With a catalog that has a projection, a schema-valid event is also checked as replay
    would apply it: a name no handler takes is unknown, an upcaster (hooks.py) that
    raises or gives args the next version's schema refuses makes the event invalid.

    What LiveStore accepts but a migration should know of is listed as warnings: keys a
    schema does not declare (dropped), text with a lone surrogate (stored as U+FFFD) or
    with U+0000 (kept whole; LiveStore cuts it there). See docs/deviations.md. A catalog
    with a projection is first checked whole, as replay checks it.

    \b
    Example:
      projector validate fixtures/synced-rebase/ai-desk
      projector validate export.ndjson --json
    """
    from events.catalog import resolve_catalog
    from events.validation import Validator, detect_catalog, validate_events
    from projector.handlers import compile_catalog
    from projector.prepare import NO_HANDLER, EventChecks

    with _errors():
        src = _open(source, lock_timeout, format_version)
        try:
            cat = resolve_catalog(catalog) if catalog else detect_catalog(src.event_names())
            validator = Validator(cat, strict_keys=strict_keys)
            checks = (  # compiled (checked whole) as replay compiles it
                EventChecks(validator, compile_catalog(cat)[1]) if cat.has_projection else None
            )

            def then(event: Any, args: Any) -> Any:
                assert checks is not None
                return checks.after_schema(event, args)[1]

            report = validate_events(
                src.events(), validator, then if checks else None, max_examples=examples
            )
        finally:
            src.close()
    where = src.path.name
    # A log with no event was checked against no app's schemas: name none (replay asks
    # for --catalog there).
    named = cat.name if report.total or catalog is not None else None
    if as_json:
        _emit(
            {
                "source": str(src.path),
                "catalog": named,
                "events": report.total,
                "valid": report.valid,
                "byKind": dict(report.by_kind),
                "byReason": dict(report.by_reason.most_common()),
                "examples": [p.as_dict() | {"message": p.message(where)} for p in report.examples],
                "warnings": sum(report.warnings.values()),
                "warningsByKind": dict(report.warnings),
                "warningExamples": report.warning_examples,
                "ok": report.ok,
            }
        )
    else:
        if named is None:
            click.echo("0 events: nothing to validate (no event tells which app's log it is)")
        else:
            click.echo(f"{report.valid:,} of {report.total:,} events valid ({named} catalog)")
        if not report.ok:
            kinds = ", ".join(f"{n:,} {k}" for k, n in sorted(report.by_kind.items()))
            click.echo(f"problems: {kinds}")
            click.echo("by reason:")
            for reason, count in report.by_reason.most_common(20):
                click.echo(f"  {count:>7,}  {reason}")
            if report.examples:
                click.echo("first examples:")
            for problem in report.examples:
                click.echo(f"  {problem.message(where)}")
            unhandled = sum(
                n for reason, n in report.by_reason.items() if reason.endswith(f": {NO_HANDLER}")
            )
            unknown = report.by_kind.get("unknown", 0) - unhandled
            if unknown * 2 > report.total:
                click.echo(
                    f"hint: most events are unknown to the {cat.name} catalog: is this another "
                    "app's log? pass --catalog NAME|DIR with its catalog (`projector scaffold` "
                    "drafts one)"
                )
        if report.warnings:
            kinds = ", ".join(f"{n:,} {k}" for k, n in sorted(report.warnings.items()))
            click.echo(f"warnings: {kinds}")
            _print_warnings(report.warning_examples)
    if not report.ok:
        sys.exit(1)


def _print_result(result: Any, as_json: bool, extra: dict[str, Any] | None = None) -> None:
    if as_json:
        _emit(result.as_dict() | (extra or {}))
        return
    verb = "would replay" if result.dry_run else result.command
    click.echo(f"{verb}: {result.source} -> {result.target}")
    parked = result.parked_total
    kinds = ", ".join(f"{n:,} {k}" for k, n in sorted(result.parked.items()))
    click.echo(
        f"  read {result.read:,} = applied {result.applied:,} + parked {parked:,}"
        + (f" ({kinds})" if kinds else "")
    )
    if not result.changed and result.command == "replay-parked":
        click.echo(
            "  nothing re-applied, every event parked as before: the target is unchanged "
            "(no run recorded, no backup kept)"
        )
    elif result.command != "replay-parked" and not result.read and not result.created:
        recorded = (
            "a dry run: nothing is recorded"
            if result.dry_run
            else "the run is recorded all the same, with no backup; `rollback` undoes it alone"
        )
        click.echo(
            f"  up to date: the source holds no event after #{result.position:,} ({recorded})"
        )
    if result.command != "replay-parked":
        total = f" of {result.total:,}" if result.total is not None else ""
        click.echo(
            f"  position #{result.position:,}{total} ({result.state}) in {result.seconds:.2f} s"
        )
    if result.backup:
        click.echo(f"  backup: {result.backup}")
    for example in result.examples:
        click.echo(f"  parked {example['kind']}: {_example_line(example)}")
    more = parked - len(result.examples)
    if more > 0:
        where = (
            "" if result.dry_run else f": {command_line('parked', result.target)} lists them all"
        )
        click.echo(f"  +{more:,} more parked{where}")
    _print_warnings(result.warning_examples)
    more = sum(result.warnings.values()) - len(result.warning_examples)
    if more > 0:
        click.echo(f"  +{more:,} more warning(s)")


_strict_option = click.option(
    "--strict",
    is_flag=True,
    envvar="PROJECTOR_STRICT",
    help="Exit 1 when the run parked any event or found anything to warn about "
    "(also: PROJECTOR_STRICT=1).",
)


#: A run that leaves its target with this many backups or more says how to prune them.
BACKUPS_HINT = 10


def _backups_kept(result: Any) -> dict[str, int] | None:
    """``{"count", "bytes"}`` of the backups beside RESULT's target, when its run took one
    and they are BACKUPS_HINT or more (catching up in a loop keeps one a run)."""
    if not result.backup or result.dry_run:
        return None
    from projector.backup import list_backups

    kept = list_backups(Path(result.target))
    if len(kept) < BACKUPS_HINT:
        return None
    return {"count": len(kept), "bytes": sum(b["bytes"] for b in kept)}


def _finish_result(result: Any, as_json: bool, strict: bool) -> None:
    """Print RESULT; under --strict, a run that parked or warned exits 1."""
    why = result.strict_failure() if strict else None
    extra: dict[str, Any] = {"strictFailure": why} if strict else {}
    kept = _backups_kept(result)
    if kept is not None:
        extra["backupsKept"] = kept
    _print_result(result, as_json, extra or None)
    if kept is not None and not as_json:
        click.echo(
            f"  {kept['count']:,} backups of {Path(result.target).name} kept "
            f"({kept['bytes'] / 2**20:,.0f} MiB): "
            f"{command_line('backups', result.target, '--prune', 'KEEP')} deletes all but "
            "the newest KEEP"
        )
    if why:
        raise Failure(
            f"--strict: {why}; see the {'JSON above' if as_json else 'lines above'}",
            kind="StrictFailure",
            reported=as_json,
        )


@_command()
@click.argument("source", type=click.Path(path_type=Path))
@click.argument("target", type=FilePath("target.db"))
@click.option(
    "--on-invalid",
    type=click.Choice(["fail", "park"]),
    default=None,
    help="An invalid or unknown event stops the run (fail) or is kept in the target's "
    "_projector_parked table while the run goes on (park). Default: the policy TARGET's "
    "migration recorded, else fail.",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Report what would happen; TARGET is not touched (refusals and path errors are "
    "the same as a real run's).",
)
@_batch_option
@_catalog_option
@_strict_option
@_source_options
@click.option(
    "--strict-keys/--no-strict-keys",
    default=None,
    help="Reject args holding a key their schema does not declare (--no-strict-keys: drop "
    "it with an excess-key warning, as LiveStore does). Default: the policy TARGET's "
    "migration recorded, else --no-strict-keys.",
)
@json_option
@click.pass_context
def replay(
    ctx: click.Context,
    source: Path,
    target: Path,
    on_invalid: str | None,
    dry_run: bool,
    batch_size: int,
    catalog: str | None,
    strict: bool,
    lock_timeout: float,
    format_version: str | None,
    strict_keys: bool | None,
    as_json: bool,
) -> None:
    """Replay SOURCE into the relational tables of TARGET (created if missing).

    A target that already holds this store's migration continues from its checkpoint:
    an interrupted run resumes, a complete one catches up with newly appended events,
    with the policies (--on-invalid, --strict-keys) the migration recorded unless given.
    Before anything is written, a run is refused (TARGET left exactly as it was) when
    SOURCE's history up to the checkpoint is not the one migrated. A run with events to
    apply backs up an existing TARGET first (see `rollback` and `backups`).

    \b
    Example:
      projector replay fixtures/small/ai-desk out/app.db
      projector replay --on-invalid park --dry-run export.json out/app.db
    """
    from projector.replay import ReplayOptions
    from projector.replay import replay as run_replay

    progress = _progress(ctx)
    try:
        with _errors():
            options = ReplayOptions(
                on_invalid=on_invalid,
                batch_size=batch_size,
                catalog=_load_catalog(catalog),
                should_stop=_Signals.install(),
                progress=progress,
                strict=strict,
                lock_timeout=lock_timeout,
                format_version=int(format_version) if format_version else None,
                strict_keys=strict_keys,
            )
            result = run_replay(source, target, options, dry_run=dry_run)
    finally:
        if progress is not None:
            progress.end()
    _finish_result(result, as_json, strict)


def _progress(ctx: click.Context) -> Any:
    from projector.log import Progress

    obj = ctx.find_root().ensure_object(dict)
    if obj.get("quiet"):
        return None
    terminal = sys.stderr.isatty() and obj.get("log_format", "human") == "human"
    return Progress(terminal=terminal)


@_command()
@click.argument("target", type=FilePath("target.db"))
@click.option(
    "--source",
    "source",
    type=click.Path(path_type=Path),
    help="The source's new path, when it moved since the last run: accepted only if its "
    "events up to the checkpoint are the ones migrated; the new path is then recorded.",
)
@click.option(
    "--catalog",
    metavar="NAME|DIR",
    help="A catalog holding the files this migration began with, when the one it recorded "
    "changed since (an upgrade of a bundled catalog): accepted only with the same files "
    "(digest), then recorded.",
)
@_batch_option
@_strict_option
@_lock_timeout_option
@json_option
@click.pass_context
def resume(
    ctx: click.Context,
    target: Path,
    source: Path | None,
    catalog: str | None,
    batch_size: int,
    strict: bool,
    lock_timeout: float,
    as_json: bool,
) -> None:
    """Continue TARGET's interrupted migration from its checkpoint.

    A complete one is caught up with the events appended since. The source is the one
    recorded in TARGET (or --source); it must still hold the same events up to the
    checkpoint, or resume refuses and TARGET is left as it was.

    \b
    Example:
      projector resume out/app.db
      projector resume out/app.db --source /mnt/backup/ai-desk
    """
    from projector.replay import ReplayOptions
    from projector.replay import resume as run_resume

    progress = _progress(ctx)
    try:
        with _errors():
            options = ReplayOptions(
                on_invalid=None,  # the policies recorded by the interrupted run
                strict_keys=None,
                catalog=_load_catalog(catalog),
                batch_size=batch_size,
                should_stop=_Signals.install(),
                progress=progress,
                strict=strict,
                lock_timeout=lock_timeout,
            )
            result = run_resume(target, options, source_path=source)
    finally:
        if progress is not None:
            progress.end()
    _finish_result(result, as_json, strict)


@_command("replay-parked")
@click.argument("target", type=FilePath("target.db"))
@_catalog_option
@_lock_timeout_option
@json_option
def replay_parked(target: Path, catalog: str | None, lock_timeout: float, as_json: bool) -> None:
    """Re-apply TARGET's parked events in their original order, each exactly once.

    Run it once the cause is fixed: a schema or handler added (--catalog), or a parked
    event's argsJson repaired in the _projector_parked table. Events that fail again
    stay parked, with their new reason; a run that re-applies nothing and parks every
    event as before leaves the target as it was (no run recorded, no backup). An event
    parked as unknown that a catalog now knows is applied only if no event applied after
    it changed its rows (the recorded source is read again: --lock-timeout applies).

    \b
    Example:
      sqlite3 out/app.db "UPDATE _projector_parked SET argsJson = '{...}' WHERE position = 42"
      projector replay-parked out/app.db
    """
    from projector.replay import ReplayOptions
    from projector.replay import replay_parked as run

    with _errors():
        result = run(
            target, ReplayOptions(catalog=_load_catalog(catalog), lock_timeout=lock_timeout)
        )
    _print_result(result, as_json)


@_command()
@click.argument("target", type=FilePath("target.db"))
@click.option(
    "--kind",
    type=click.Choice(["unknown", "invalid", "unparseable", "integrity", "held"]),
    help="Only events parked as KIND.",
)
@json_option
def parked(target: Path, kind: str | None, as_json: bool) -> None:
    """List TARGET's parked events: position, event, name, kind, row and reason.

    A held event names the parked event it waits on. TARGET may be an app database
    `finalize` wrote: its parked events are read from the sidecar beside it.

    \b
    Example:
      projector parked out/app.db --kind integrity
    """
    from projector.handoff import is_handed_over, sidecar_path
    from projector.runs import parked as list_parked

    with _errors():
        if is_handed_over(target):
            sidecar = sidecar_path(target)
            info = list_parked(sidecar, kind) | {"target": str(target), "sidecar": str(sidecar)}
        else:
            info = list_parked(target, kind)
    if as_json:
        _emit(info)
        return
    kinds = ", ".join(f"{n:,} {k}" for k, n in info["byKind"].items())
    shown = f"; {len(info['events']):,} {kind}" if kind else ""
    click.echo(f"{info['parked']:,} parked" + (f" ({kinds})" if kinds else "") + shown)
    for event in info["events"]:
        row = event["row"] or "-"
        waits = f" (waits on {event['waitsOn']})" if event["waitsOn"] else ""
        click.echo(
            f"  #{event['position']:<7,} {event['eventId']:<10} {event['name']:<22} "
            f"{event['kind']:<11} {row}{waits}"
        )
        click.echo(f"      {event['reason']}")


@_command()
@click.argument("target", type=FilePath("target.db"))
@json_option
def status(target: Path, as_json: bool) -> None:
    """Show TARGET's migration: source, store, checkpoint, state, counts, last backup, and
    the secondary indexes an unfinished first run has yet to build and the derived tables
    it has yet to fill (bulk load).

    TARGET may also be an app database `finalize` wrote: the migration is read from its
    sidecar, with the hand-off and whether the app has changed the database since.

    \b
    Example:
      projector status out/app.db --json
    """
    from projector.handoff import is_handed_over
    from projector.runs import status as read_status

    with _errors():
        if is_handed_over(target):
            from projector.finalize import handoff_status

            info = handoff_status(target)
        else:
            info = read_status(target)
    if as_json:
        _emit(info)
        return
    total = f" of {info['sourceTotal']:,}" if info["sourceTotal"] is not None else ""
    click.echo(f"target:     {info['target']}")
    click.echo(f"source:     {info['source']} ({info['sourceKind']})")
    click.echo(f"store id:   {info['storeId'] or '(unknown)'}   catalog: {info['catalog']}")
    click.echo(f"checkpoint: #{info['position']:,}{total} ({info['lastEventId'] or '-'})")
    click.echo(f"state:      {info['state']}")
    click.echo(
        f"policies:   --on-invalid {info['onInvalid']}, "
        + ("--strict-keys" if info.get("strictKeys") else "--no-strict-keys")
        + " (a catch-up without them keeps these)"
    )
    click.echo(
        f"events:     {info['applied']:,} applied, {info['parked']:,} parked"
        + (f" ({info['reapplied']:,} re-applied from parking)" if info["reapplied"] else "")
    )
    last = info["lastRun"]
    since = info.get("targetSince")
    if info["backup"]:
        gone = (
            " (missing: `projector rollback` of the target used it since the hand-off)"
            if since and since["rolledBack"]
            else " (missing: deleted by `backups --prune`, or moved)"
        )
        backup = info["backup"] + ("" if Path(info["backup"]).exists() else gone)
    elif last and last["createdTarget"]:
        backup = "(none: the last run created the target)"
    elif last and not last["read"]:
        backup = "(none: the last run applied nothing)"
    else:
        backup = "(none)"
    click.echo(f"backup:     {backup}")
    handoff = info.get("handoff")
    if handoff:
        changed = " (changed by the app since)" if info["appChangedSinceHandoff"] else ""
        click.echo(
            f"hand-off:   {handoff['finalizedAt']} from {handoff['target']} at "
            f"#{handoff['position']:,}{changed}"
        )
        if since:
            click.echo(
                "            "
                + ("rolled back since the hand-off: " if since["rolledBack"] else "")
                + f"the target is at #{since['position']:,} now ({since['state']})"
            )
    running = info["state"].startswith("running")
    if info["deferredIndexes"]:
        click.echo(
            f"indexes:    {info['deferredIndexes']:,} secondary index(es) not built yet: the "
            "first run builds them at its end" + ("" if running else " (resume it)")
        )
    if info["deferredTables"]:
        click.echo(
            f"derived:    {', '.join(info['deferredTables'])} not filled yet: the first run "
            "fills them from their parents' rows at its end" + ("" if running else " (resume it)")
        )


@_command()
@click.argument("target", type=FilePath("target.db"))
@json_option
def rollback(target: Path, as_json: bool) -> None:
    """Return TARGET to exactly its state before the last run (finished or interrupted).

    Rolling back the run that created TARGET removes it; the backup used is deleted; a
    run that applied nothing is only forgotten (unless it ended a first run's bulk load:
    its backup is restored). Rolling back again undoes the run before.

    \b
    Example:
      projector rollback out/app.db
    """
    from projector.runs import rollback as run_rollback

    with _errors():
        info = run_rollback(target)
    if as_json:
        _emit(info)
    else:
        click.echo(info["message"])


@_command()
@click.argument("target", type=FilePath("target.db"))
@click.option(
    "--prune",
    type=click.IntRange(0),
    metavar="KEEP",
    help="Delete all but the newest KEEP backups (the runs before them can then no "
    "longer be rolled back).",
)
@json_option
def backups(target: Path, prune: int | None, as_json: bool) -> None:
    """List TARGET's backups (one per run that applied events), oldest first, with sizes.

    \b
    Example:
      projector backups out/app.db
      projector backups out/app.db --prune 2
    """
    from projector.runs import backups_of

    with _errors():
        info = backups_of(target, prune)
    if as_json:
        _emit(info)
        return
    for backup in info["pruned"]:
        click.echo(f"deleted  {backup['path']}  ({backup['bytes']:,} bytes)")
    for backup in info["backups"]:
        used = f"rollback of run {backup['usedBy']}" if backup["usedBy"] else "no run refers to it"
        click.echo(f"{backup['takenAt']}  {backup['bytes']:>13,} bytes  {backup['path']}  ({used})")
    click.echo(f"{len(info['backups']):,} backup(s), {info['bytes']:,} bytes")


@_command()
@click.argument("target", type=FilePath("target.db"))
@json_option
def digest(target: Path, as_json: bool) -> None:
    """Print a canonical content digest of TARGET's tables (per table and overall).

    An app database `finalize` wrote digests (with its sidecar's parked events) to the
    same value as the target it came from.

    \b
    Example:
      projector digest out/app.db
    """
    from projector.digest import digest as compute
    from projector.handoff import is_handed_over
    from projector.target import require_target

    with _errors():
        if is_handed_over(target):
            from projector.finalize import handoff_digest

            info = handoff_digest(target)
        else:
            require_target(target)
            info = compute(target)
    if as_json:
        _emit(info)
        return
    for table, value in info["tables"].items():
        click.echo(f"{value['sha256']}  {value['rows']:>8,}  {table}")
    click.echo(f"{info['overall']}  overall")


@_command()
@click.argument("target", type=FilePath("target.db"))
@click.option(
    "--against",
    type=click.Path(path_type=Path),
    help="LiveStore's own state DB (state<hash>@6.db beside the eventlog), or the store "
    "folder that holds it, to compare with.",
)
@click.option(
    "--no-source",
    is_flag=True,
    help="Do not re-read the recorded source (it was retired); the check says it was skipped.",
)
@_catalog_option
@_lock_timeout_option
@json_option
def verify(
    target: Path,
    against: Path | None,
    no_source: bool,
    catalog: str | None,
    lock_timeout: float,
    as_json: bool,
) -> None:
    """Check TARGET: integrity, foreign keys, event accounting, and LiveStore's own state.

    Exit 1 on a failed check or on any difference explained neither by a parked event nor
    by a deliberate deviation from LiveStore (named, e.g. nul-truncation: docs/deviations.md).

    \b
    Example:
      projector verify out/app.db --against fixtures/small/ai-desk
      projector verify out/app.db --no-source
    """
    from projector.handoff import refuse_handed_over
    from projector.verify import verify as run_verify

    with _errors():
        refuse_handed_over(target, "verify")  # status and digest read one; verify cannot
        report = run_verify(
            target,
            against,
            source=not no_source,
            catalog=_load_catalog(catalog),
            lock_timeout=lock_timeout,
        )
    if as_json:
        _emit(report.as_dict())
    else:
        for check in report.checks:
            click.echo(f"{'ok  ' if check.ok else 'FAIL'}  {check.name}: {check.detail}")
        for difference in report.differences:
            click.echo(f"      {difference.line()}")
        _print_warnings(report.warnings)
        click.echo("verified" if report.ok else "NOT verified")
    if not report.ok:
        sys.exit(1)


@_command()
@click.argument("target", type=FilePath("target.db"))
@click.option(
    "--out",
    type=FilePath("app.db"),
    metavar="APP_DB",
    help="The app database to write (default: TARGET with .app before its suffix). "
    "The migration's bookkeeping goes to APP_DB.projector.db beside it.",
)
@click.option(
    "--against",
    type=click.Path(path_type=Path),
    help="LiveStore's state DB, for the verification finalize runs first (as verify).",
)
@click.option(
    "--no-source",
    is_flag=True,
    help="Do not re-read the recorded source in that verification (it was retired); the "
    "check says it was skipped.",
)
@_catalog_option
@click.option(
    "--journal-mode",
    type=click.Choice(["delete", "wal"]),
    default=None,
    help="delete: a rollback-journal file complete by itself (opens read-only from a "
    "read-only folder); wal: WAL mode stored in the file (the app's folder must be writable). "
    "Default: the mode of this migration's last hand-off into APP_DB, else delete.",
)
@click.option(
    "--drizzle",
    "drizzle_dir",
    type=click.Path(path_type=Path),
    metavar="DIR",
    help="Record the Drizzle migration in DIR as applied in APP_DB, so the app's migrate() "
    "skips it (DIR is written as by `projector drizzle` when it holds none).",
)
@click.option(
    "--force",
    is_flag=True,
    help="Replace APP_DB even if it was not handed over by finalize, another migration "
    "handed it over, or the app has changed it since (that data is lost; the output says "
    "what was).",
)
@_lock_timeout_option
@json_option
def finalize(
    target: Path,
    out: Path | None,
    against: Path | None,
    no_source: bool,
    catalog: str | None,
    journal_mode: str | None,
    drizzle_dir: Path | None,
    force: bool,
    lock_timeout: float,
    as_json: bool,
) -> None:
    """Verify TARGET, then hand its data over to the new app as APP_DB.

    APP_DB holds the app's tables only (plus the catalog's triggers and views), in the
    journal mode asked, with the catalog's user_version and application_id, no -wal or
    -shm beside it. TARGET is left as it is: catch up into it (`projector replay`) and
    finalize again; an APP_DB the app has written to since, or one another migration
    handed over, is not replaced (--force). Through a symbolic link, the file it links
    to is.

    \b
    Example:
      projector finalize out/app.db --out ../new-app/data/app.db --drizzle ../new-app/db
    """
    from projector.finalize import FinalizeOptions
    from projector.finalize import finalize as run_finalize

    with _errors():
        options = FinalizeOptions(
            out=out,
            against=against,
            catalog=_load_catalog(catalog),
            journal_mode=journal_mode,
            drizzle=drizzle_dir,
            force=force,
            lock_timeout=lock_timeout,
            source=not no_source,
        )
        result = run_finalize(target, options)
    if as_json:
        _emit(result.as_dict())
        return
    header = [f"journal mode {result.journal_mode}"]
    if result.user_version is not None:
        header.append(f"user_version {result.user_version}")
    if result.application_id is not None:
        header.append(f"application_id {result.application_id}")
    verb = "replaced" if result.replaced else "wrote"
    click.echo(f"{verb} {result.app_db} ({result.catalog}; {', '.join(header)})")
    click.echo(f"  from {result.target} at position #{result.position:,}")
    for lost in result.discarded:
        click.echo(f"  discarded (--force): {lost}")
    click.echo("  rows: " + ", ".join(f"{t} {n:,}" for t, n in result.rows.items()))
    if result.parked:
        click.echo(
            f"  parked: {result.parked:,} events not applied, kept in the sidecar "
            f"({command_line('status', result.app_db)})"
        )
    for check in result.checks:
        click.echo(f"  ok  {check}")
    if result.drizzle:
        click.echo(
            f"  drizzle: {result.drizzle['migration']} recorded as applied "
            f"({result.drizzle['migrations']})"
        )
    click.echo(f"  bookkeeping: {result.sidecar} ({command_line('status', result.app_db)})")


@_command()
@click.argument("paths", nargs=-1, required=True, metavar="[TARGET] OUT_DIR")
@_catalog_option
@click.option(
    "--force",
    is_flag=True,
    help="Replace schema.ts, relations.ts and drizzle.config.ts even where they were edited.",
)
@json_option
def drizzle(paths: tuple[str, ...], catalog: str | None, force: bool, as_json: bool) -> None:
    """Write Drizzle ORM files for the app database into OUT_DIR, from the catalog.

    schema.ts and relations.ts (column modes that round-trip the stored encodings,
    enums, keys, indexes, CHECKs), drizzle.config.ts and migrations/ (the 0000 migration
    `finalize --drizzle` records as applied). The catalog is TARGET's, or --catalog's.

    \b
    Example:
      projector drizzle --catalog ai-desk ../new-app/db
      projector drizzle out/app.db ../new-app/db
    """
    from projector.drizzle import write_drizzle
    from projector.errors import TargetError
    from projector.finalize import recorded_catalog

    if len(paths) > 2:
        raise click.UsageError("expected [TARGET] OUT_DIR")
    with _errors():
        if catalog is not None:
            cat = _load_catalog(catalog)
        elif len(paths) == 2:
            cat = recorded_catalog(Path(paths[0]))
        else:
            raise TargetError("name the catalog: a TARGET before OUT_DIR, or --catalog NAME|DIR")
        files = write_drizzle(cat, Path(paths[-1]), force=force)
    if as_json:
        _emit({"catalog": cat.name} | files.as_dict())
        return
    click.echo(f"wrote Drizzle files of the {cat.name} catalog to {files.out_dir}:")
    for path in (files.schema_ts, files.relations_ts, files.config_ts, files.migration):
        click.echo(f"  {path}")


def _iso8601(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    """--exported-at as toISOString() writes it (`events.export.iso_string`)."""
    if value is None:
        return None
    from events.export import iso_string

    try:
        return iso_string(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@_command()
@click.argument("source", type=click.Path(path_type=Path))
@click.argument("out", type=FilePath("events.ndjson", allow_dash=True))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["json", "ndjson"]),
    help="json: `livestore sync export` (global events only); ndjson: every event. "
    "Default: from OUT's extension (.json; .ndjson or .jsonl).",
)
@click.option(
    "--exported-at",
    callback=_iso8601,
    help="The export's exportedAt: ISO 8601 with a UTC offset (Z, +02:00), written as "
    "toISOString() writes it, in UTC with milliseconds (default: now).",
)
@click.option("--force", is_flag=True, help="Replace OUT if it exists.")
@_source_options
@click.pass_context
def export(
    ctx: click.Context,
    source: Path,
    out: Path,
    fmt: str | None,
    exported_at: str | None,
    force: bool,
    lock_timeout: float,
    format_version: str | None,
) -> None:
    """Write SOURCE's events to OUT (`-` for stdout) as a JSON export or as NDJSON.

    A file OUT appears only once the export is whole. On stdout, lines are written as
    they are made: an export that fails part-way (exit 1) leaves the ones before it.

    \b
    Example:
      projector export fixtures/small/ai-desk small.ndjson
      projector export fixtures/small/ai-desk - --format json | head
    """
    from events import export as exporting
    from projector.target import refuse_source_folder

    to_stdout = str(out) == "-"
    if fmt is None:
        fmt = None if to_stdout else exporting.FORMATS_BY_SUFFIX.get(out.suffix.lower())
        if fmt is None:
            what = "stdout" if to_stdout else f"the extension of {out}"
            raise click.UsageError(f"cannot tell the format from {what}; pass --format json|ndjson")
    with _errors():
        src = _open(source, lock_timeout, format_version)
        try:
            if not to_stdout:
                if out.exists() and out.resolve() == src.path.resolve():
                    raise Failure(f"{out}: is the source; refusing to overwrite it")
                refuse_source_folder(out, src)
                if out.is_dir():
                    raise Failure(f"{out}: is a directory; OUT is a file (or - for stdout)")
                if out.exists() and not force:
                    raise Failure(f"{out}: already exists; pass --force to replace it")
            kw = {"exported_at": exported_at} if fmt == "json" else {}
            stream: Any = sys.stdout if to_stdout else out
            count, left_out = exporting.export(src, stream, fmt, replace=force, **kw)
        finally:
            src.close()
    note = (
        f" ({left_out:,} client-only events left out: a sync export holds global events only)"
        if left_out
        else ""
    )
    line = f"wrote {count:,} events to {'stdout' if to_stdout else out}{note}"
    if not to_stdout:
        click.echo(line)
    elif not _quiet(ctx):  # stdout holds the export: the summary is a log line
        obj = ctx.find_root().ensure_object(dict)
        if obj.get("log_format") == "json":
            from projector.log import json_line

            line = json_line("export.done", "info", message=line, events=count, leftOut=left_out)
        click.echo(line, err=True)


@_command()
@click.argument("source", type=click.Path(path_type=Path))
@click.argument("out_dir", type=click.Path(path_type=Path))
@click.option(
    "--state",
    type=click.Path(path_type=Path),
    help="LiveStore's state DB (state<hash>@6.db beside the eventlog, or the store folder "
    "that holds it): its tables become the draft's, and the draft's replay is compared with it.",
)
@click.option(
    "--force",
    is_flag=True,
    help="Write into a non-empty OUT_DIR, replacing the catalog files in it.",
)
@_source_options
@json_option
def scaffold(
    source: Path,
    out_dir: Path,
    state: Path | None,
    force: bool,
    lock_timeout: float,
    format_version: str | None,
    as_json: bool,
) -> None:
    """Write a draft catalog for SOURCE's app into OUT_DIR and say how far it is from
    LiveStore's state.

    The draft (docs/catalogs.md) holds JSON Schemas inferred from the log, the target
    tables (from --state's DDL, else inferred from the events) and a projection guessed
    from event names and args, every guess marked. The log is replayed with it into a
    scratch target and, with --state, compared row by row (OUT_DIR/REPORT.md). It is
    called verified only when nothing was parked and verify found no difference; exit 0
    either way (a draft is a draft).

    \b
    Example:
      projector scaffold fixtures/todomvc-small/todomvc out/todomvc-draft \\
        --state fixtures/todomvc-small/todomvc/state-96296379336@6.db
    """
    from projector.scaffold import scaffold as run_scaffold

    with _errors():
        result = run_scaffold(
            source,
            out_dir,
            state=state,
            force=force,
            lock_timeout=lock_timeout,
            format_version=int(format_version) if format_version else None,
        )
    if as_json:
        _emit(result.as_dict())
    else:
        for line in result.summary():
            click.echo(line)


def main() -> None:
    """The `projector` command. Output that cannot be written (stdout on a full disk,
    /dev/full) is one line on stderr and exit 1, not a traceback; click itself takes care
    of a closed pipe (EPIPE)."""
    try:
        cli(prog_name="projector")
    except OSError as exc:
        echoed = any(
            frame.name == "echo" and Path(frame.filename).parts[-2:] == ("click", "utils.py")
            for frame in traceback.extract_tb(exc.__traceback__)
        )
        if not echoed:
            raise
        sys.stdout = open(os.devnull, "w")  # nothing more to flush at exit  # noqa: SIM115
        click.echo(
            f"Error: cannot write the output ({exc.strerror or exc}); what the command did "
            "is not undone",
            err=True,
        )
        sys.exit(1)


if __name__ == "__main__":
    main()
