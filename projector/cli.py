"""The `projector` command: a thin click wrapper over the library.

Each command parses its options, calls one library function, prints data to stdout
(human text, or JSON with --json) and maps errors to exit codes: 1 for a failed check or
a bad input (`Error: ...` on stderr), 2 for usage errors, 130/143 after SIGINT/SIGTERM.
"""

from __future__ import annotations

import io
import json
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from projector import __version__

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}
#: projector.replay.DEFAULT_BATCH, repeated so that `--help` need not import the library.
DEFAULT_BATCH = 20000


def _emit(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False, sort_keys=False))


@contextmanager
def _errors() -> Iterator[None]:
    """Map library errors to one-line messages and exit code 1."""
    from events.errors import EventsError
    from projector.errors import Interrupted, ProjectorError

    try:
        yield
    except Interrupted as exc:
        click.echo(f"Interrupted: {exc}", err=True)
        sys.exit(_Signals.code or 130)
    except (ProjectorError, EventsError) as exc:
        raise click.ClickException(str(exc)) from None
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(130)


class _Signals:
    """SIGINT/SIGTERM set a flag; the replay loop stops at the next batch boundary."""

    code = 0

    @classmethod
    def install(cls) -> Callable[[], bool]:
        def handler(signum: int, _frame: Any) -> None:
            cls.code = 128 + signum

        signal.signal(signal.SIGINT, handler)
        signal.signal(signal.SIGTERM, handler)
        return lambda: cls.code != 0


def _catalog_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--catalog",
        metavar="NAME|DIR",
        help="Schema catalog: a bundled name (ai-desk, todo-0.3.1) or a directory of "
        "JSON Schemas. Default: the bundled catalog that knows the log's event names.",
    )(fn)


def _load_catalog(value: str | None) -> Any:
    if value is None:
        return None
    from events.validation import SCHEMAS_DIR, Catalog

    path = Path(value)
    if not path.is_dir() and (SCHEMAS_DIR / value).is_dir():
        path = SCHEMAS_DIR / value
    return Catalog.load(path)


json_option = click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
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
    "about 3 KB per event.",
)


@click.group(context_settings=CONTEXT)
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
    content and the source is only ever opened read-only.

    \b
    Example:
      projector validate fixtures/small/ai-desk
      projector replay fixtures/small/ai-desk out/app.db
      projector verify out/app.db --against fixtures/small/ai-desk/state-11367593325@6.db
    """
    from projector.log import configure

    # A hostile log's names and keys can hold lone surrogates, which UTF-8 cannot encode:
    # print them as \udXXX escapes (also valid JSON) rather than die on a UnicodeEncodeError.
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="backslashreplace")
    ctx.ensure_object(dict)
    ctx.obj["log_format"] = log_format
    ctx.obj["quiet"] = quiet
    configure(log_format, "quiet" if quiet else "verbose" if verbose else "normal")


@cli.command(context_settings=CONTEXT)
@click.argument("source", type=click.Path(path_type=Path))
@json_option
def inspect(source: Path, as_json: bool) -> None:
    """Describe SOURCE: format and version, store id, event count, seq range, names.

    \b
    Example:
      projector inspect fixtures/small/ai-desk --json
    """
    from events.sources import open_source
    from events.summary import summarize

    with _errors():
        src = open_source(source)
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
    click.echo(f"seq range:   {info['firstEventId']} .. {info['lastEventId']}")
    click.echo("by name:")
    for name, count in info["byName"].items():
        click.echo(f"  {count:>9,}  {name}")


@cli.command(context_settings=CONTEXT)
@click.argument("source", type=click.Path(path_type=Path))
@_catalog_option
@click.option("--examples", default=10, show_default=True, help="How many problems to show.")
@_strict_keys_option
@json_option
def validate(
    source: Path, catalog: str | None, examples: int, strict_keys: bool, as_json: bool
) -> None:
    """Check every event of SOURCE against its JSON Schema; exit 1 if any is invalid or unknown.

    What LiveStore accepts but a migration should know of is listed as warnings: keys a
    schema does not declare (dropped), text with a lone surrogate (stored as U+FFFD) or
    with U+0000 (kept whole; LiveStore cuts it there). See docs/deviations.md.

    \b
    Example:
      projector validate fixtures/synced-rebase/ai-desk
      projector validate export.ndjson --json
    """
    from events.sources import open_source
    from events.validation import Validator, detect_catalog, validate_events

    with _errors():
        src = open_source(source)
        try:
            cat = _load_catalog(catalog) or detect_catalog(src.event_names())
            validator = Validator(cat, strict_keys=strict_keys)
            report = validate_events(src.events(), validator, max_examples=examples)
        finally:
            src.close()
    where = src.path.name
    if as_json:
        _emit(
            {
                "source": str(src.path),
                "catalog": cat.name,
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
        click.echo(f"{report.valid:,} of {report.total:,} events valid ({cat.name} catalog)")
        if not report.ok:
            kinds = ", ".join(f"{n:,} {k}" for k, n in sorted(report.by_kind.items()))
            click.echo(f"problems: {kinds}")
            click.echo("by reason:")
            for reason, count in report.by_reason.most_common(20):
                click.echo(f"  {count:>7,}  {reason}")
            click.echo("first examples:")
            for problem in report.examples:
                click.echo(f"  {problem.message(where)}")
        if report.warnings:
            kinds = ", ".join(f"{n:,} {k}" for k, n in sorted(report.warnings.items()))
            click.echo(f"warnings: {kinds}")
            for warning in report.warning_examples:
                click.echo(f"  {warning['kind']}: {warning['detail']}")
    if not report.ok:
        sys.exit(1)


def _print_result(result: Any, as_json: bool) -> None:
    if as_json:
        _emit(result.as_dict())
        return
    verb = "would replay" if result.dry_run else result.command
    click.echo(f"{verb}: {result.source} -> {result.target}")
    parked = result.parked_total
    kinds = ", ".join(f"{n:,} {k}" for k, n in sorted(result.parked.items()))
    click.echo(
        f"  read {result.read:,} = applied {result.applied:,} + parked {parked:,}"
        + (f" ({kinds})" if kinds else "")
    )
    if result.command != "replay-parked":
        total = f" of {result.total:,}" if result.total is not None else ""
        click.echo(
            f"  position #{result.position:,}{total} ({result.state}) in {result.seconds:.2f} s"
        )
    if result.backup:
        click.echo(f"  backup: {result.backup}")
    for example in result.examples:
        click.echo(f"  parked {example['kind']}: {example['reason']}")
    for warning in result.warning_examples:
        click.echo(f"  warning {warning['kind']}: {warning['detail']}")


_strict_option = click.option(
    "--strict",
    is_flag=True,
    envvar="PROJECTOR_STRICT",
    help="Exit 1 when the run parked any event or found anything to warn about "
    "(also: PROJECTOR_STRICT=1).",
)


def _finish_result(result: Any, as_json: bool, strict: bool) -> None:
    """Print RESULT; under --strict, a run that parked or warned exits 1."""
    _print_result(result, as_json)
    why = result.strict_failure() if strict else None
    if why:
        raise click.ClickException(f"--strict: {why}; see the lines above")


@cli.command(context_settings=CONTEXT)
@click.argument("source", type=click.Path(path_type=Path))
@click.argument("target", type=click.Path(path_type=Path))
@click.option(
    "--on-invalid",
    type=click.Choice(["fail", "park"]),
    default="fail",
    show_default=True,
    help="An invalid or unknown event stops the run (fail) or is kept in the target's "
    "_projector_parked table while the run goes on (park).",
)
@click.option("--dry-run", is_flag=True, help="Report what would happen; TARGET is not touched.")
@_batch_option
@_catalog_option
@_strict_option
@_strict_keys_option
@json_option
@click.pass_context
def replay(
    ctx: click.Context,
    source: Path,
    target: Path,
    on_invalid: str,
    dry_run: bool,
    batch_size: int,
    catalog: str | None,
    strict: bool,
    strict_keys: bool,
    as_json: bool,
) -> None:
    """Replay SOURCE into the relational tables of TARGET (created if missing).

    A target that already holds this store's migration continues from its checkpoint:
    an interrupted run resumes, a complete one catches up with newly appended events.
    A backup of an existing TARGET is taken first (see `rollback`).

    \b
    Example:
      projector replay fixtures/small/ai-desk out/app.db
      projector replay --on-invalid park --dry-run export.json out/app.db
    """
    from projector.replay import ReplayOptions
    from projector.replay import replay as run_replay

    with _errors():
        options = ReplayOptions(
            on_invalid=on_invalid,
            batch_size=batch_size,
            catalog=_load_catalog(catalog),
            should_stop=_Signals.install(),
            progress=_progress(ctx, as_json),
            strict=strict,
            strict_keys=strict_keys,
        )
        result = run_replay(source, target, options, dry_run=dry_run)
    _finish_result(result, as_json, strict)


def _progress(ctx: click.Context, as_json: bool) -> Any:
    from projector.log import progress_reporter

    if ctx.obj.get("quiet"):
        return None
    terminal = sys.stderr.isatty() and ctx.obj.get("log_format") == "human"
    return progress_reporter(terminal=terminal)


@cli.command(context_settings=CONTEXT)
@click.argument("target", type=click.Path(path_type=Path))
@_batch_option
@_strict_option
@json_option
@click.pass_context
def resume(ctx: click.Context, target: Path, batch_size: int, strict: bool, as_json: bool) -> None:
    """Continue TARGET's interrupted migration from its checkpoint.

    The source is the one recorded in TARGET; it must still hold the same events up to
    the checkpoint, or resume refuses.

    \b
    Example:
      projector resume out/app.db
    """
    from projector.replay import ReplayOptions
    from projector.replay import resume as run_resume

    with _errors():
        options = ReplayOptions(
            on_invalid=None,  # the policies recorded by the interrupted run
            strict_keys=None,
            batch_size=batch_size,
            should_stop=_Signals.install(),
            progress=_progress(ctx, as_json),
            strict=strict,
        )
        result = run_resume(target, options)
    _finish_result(result, as_json, strict)


@cli.command("replay-parked", context_settings=CONTEXT)
@click.argument("target", type=click.Path(path_type=Path))
@_catalog_option
@json_option
def replay_parked(target: Path, catalog: str | None, as_json: bool) -> None:
    """Re-apply TARGET's parked events in their original order, each exactly once.

    Run it once the cause is fixed: a schema or handler added (--catalog), or a parked
    event's argsJson repaired in the _projector_parked table. Events that fail again
    stay parked, with their new reason.

    \b
    Example:
      sqlite3 out/app.db "UPDATE _projector_parked SET argsJson = '{...}' WHERE position = 42"
      projector replay-parked out/app.db
    """
    from projector.replay import ReplayOptions
    from projector.replay import replay_parked as run

    with _errors():
        result = run(target, ReplayOptions(catalog=_load_catalog(catalog)))
    _print_result(result, as_json)


@cli.command(context_settings=CONTEXT)
@click.argument("target", type=click.Path(path_type=Path))
@json_option
def status(target: Path, as_json: bool) -> None:
    """Show TARGET's migration: source, store, checkpoint, state, counts, last backup.

    \b
    Example:
      projector status out/app.db --json
    """
    from projector.runs import status as read_status

    with _errors():
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
        f"events:     {info['applied']:,} applied, {info['parked']:,} parked"
        + (f" ({info['reapplied']:,} re-applied from parking)" if info["reapplied"] else "")
    )
    click.echo(f"backup:     {info['backup'] or '(none: the last run created the target)'}")


@cli.command(context_settings=CONTEXT)
@click.argument("target", type=click.Path(path_type=Path))
@json_option
def rollback(target: Path, as_json: bool) -> None:
    """Return TARGET to exactly its state before the last run (finished or interrupted).

    Rolling back the run that created TARGET removes it.

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


@cli.command(context_settings=CONTEXT)
@click.argument("target", type=click.Path(path_type=Path))
@json_option
def digest(target: Path, as_json: bool) -> None:
    """Print a canonical content digest of TARGET's tables (per table and overall).

    \b
    Example:
      projector digest out/app.db
    """
    from projector.digest import digest as compute
    from projector.errors import TargetError
    from projector.target import is_target

    with _errors():
        if not target.exists() or not is_target(target):
            raise TargetError(f"{target}: not a projector target")
        info = compute(target)
    if as_json:
        _emit(info)
        return
    for table, value in info["tables"].items():
        click.echo(f"{value['sha256']}  {value['rows']:>8,}  {table}")
    click.echo(f"{info['overall']}  overall")


@cli.command(context_settings=CONTEXT)
@click.argument("target", type=click.Path(path_type=Path))
@click.option(
    "--against",
    type=click.Path(path_type=Path),
    help="LiveStore's own state DB (state-<hash>@6.db beside the eventlog) to compare with.",
)
@json_option
def verify(target: Path, against: Path | None, as_json: bool) -> None:
    """Check TARGET: integrity, foreign keys, event accounting, and LiveStore's own state.

    Exit 1 on a failed check or on any difference explained neither by a parked event nor
    by a deliberate deviation from LiveStore (named, e.g. nul-truncation: docs/deviations.md).

    \b
    Example:
      projector verify out/app.db --against fixtures/small/ai-desk/state-11367593325@6.db
    """
    from projector.verify import verify as run_verify

    with _errors():
        report = run_verify(target, against)
    if as_json:
        _emit(report.as_dict())
    else:
        for check in report.checks:
            click.echo(f"{'ok  ' if check.ok else 'FAIL'}  {check.name}: {check.detail}")
        for difference in report.differences:
            click.echo(f"      {difference.line()}")
        click.echo("verified" if report.ok else "NOT verified")
    if not report.ok:
        sys.exit(1)


@cli.command(context_settings=CONTEXT)
@click.argument("source", type=click.Path(path_type=Path))
@click.argument("out", type=click.Path(path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["json", "ndjson"]),
    required=True,
    help="json: `livestore sync export` (global events only); ndjson: every event.",
)
@click.option("--exported-at", help="The export's exportedAt (default: now).")
def export(source: Path, out: Path, fmt: str, exported_at: str | None) -> None:
    """Write SOURCE's events as a JSON export or as NDJSON (one event per line).

    \b
    Example:
      projector export fixtures/small/ai-desk small.ndjson --format ndjson
    """
    from events.export import export as run_export
    from events.sources import open_source

    with _errors():
        src = open_source(source)
        try:
            kw = {"exported_at": exported_at} if fmt == "json" else {}
            count = run_export(src, out, fmt, **kw)
        finally:
            src.close()
    click.echo(f"wrote {count:,} events to {out}")


def main() -> None:
    cli(prog_name="projector")


if __name__ == "__main__":
    main()
