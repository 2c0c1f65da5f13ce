"""Catalogs: everything the projector knows about one app, in one folder.

A catalog is the translation of an app's LiveStore schema (its events, tables and
materializers: ``makeSchema({ events, state })``). Its folder holds:

- ``catalog.toml``: the app's name, its tables (column encodings, derived tables, client
  documents, how they map onto LiveStore's state tables) and its projection: what each
  event does to the tables, declared (insert, update, delete, upsert, bulk update);
- ``*.json``: one JSON Schema per event name (the validation contract);
- ``migrations/NNNN_name.sql``: the target tables, as versioned migrations;
- ``hooks.py`` (optional): Python for what the declarations cannot say: upcasters and
  handlers, registered on a `Hooks` object named ``hooks``.

The contract is written down in docs/catalogs.md. Bundled catalogs live in ``schemas/``
(``schemas/<app>/``); any other folder can be passed with ``--catalog PATH``. A folder of
JSON Schemas alone (no catalog.toml) is a catalog too, good for `validate` only.
This module only loads and checks the folder; `projector.handlers` and
`projector.target` turn the declarations into handlers and tables.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
import sys
import tomllib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import jsonschema_rs

from events.errors import CatalogError
from events.regex import ecma_schema
from events.upcast import Upcasters

SCHEMAS_DIR = Path(__file__).resolve().parent.parent / "schemas"
#: The JSON Schema of catalog.toml itself: every catalog is checked against it on load.
SPEC_SCHEMA = SCHEMAS_DIR / "catalog.schema.json"
SPEC_FILE = "catalog.toml"
HOOKS_FILE = "hooks.py"
MIGRATIONS_DIR = "migrations"
MIGRATION_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class HandlerHook:
    """A Python handler registered in a catalog's hooks.py.

    ``fn(rows, args)`` reads and writes whole rows through ``rows`` (a
    `projector.store.RowStore`: ``get``, ``put``, ``delete``) and raises
    `projector.errors.IntegrityBreak` to park an event that would break integrity.
    ``tables`` are the tables it writes; ``key`` the args field naming the row it touches
    (its entity, for holding back later events when one is parked); ``reads`` the
    (table, args field) pairs of rows it looks at, fetched a batch at a time.
    """

    name: str
    fn: Callable[[Any, dict[str, Any]], None]
    tables: tuple[str, ...]
    key: str | None = None
    reads: tuple[tuple[str, str], ...] = ()


class Hooks:
    """What a catalog's hooks.py registers: upcasters and Python handlers.

    In hooks.py::

        from projector.catalog import Hooks

        hooks = Hooks()

        @hooks.upcaster("v1.PersonaCreated", "v2.PersonaCreated")
        def upcast_persona_created_v1_v2(args): ...

        @hooks.handler("v1.Renamed", tables=("items",), key="id")
        def renamed(rows, args): ...

    A name registered twice is an error (ValueError), like sqlite-utils' Migrations.
    """

    def __init__(self) -> None:
        self.upcasters = Upcasters()
        self.handlers: dict[str, HandlerHook] = {}

    def upcaster(self, from_name: str, to_name: str) -> Callable[[Any], Any]:
        """Register the decorated function as the upcast step FROM_NAME -> TO_NAME."""
        return self.upcasters.register(from_name, to_name)

    def handler(
        self,
        name: str,
        *,
        tables: Iterable[str],
        key: str | None = None,
        reads: Iterable[tuple[str, str]] = (),
    ) -> Callable[[Any], Any]:
        """Register the decorated ``fn(rows, args)`` as the handler of event NAME."""

        def register(fn: Callable[[Any, dict[str, Any]], None]) -> Any:
            if name in self.handlers:
                raise ValueError(f"a handler for {name} is already registered")
            self.handlers[name] = HandlerHook(name, fn, tuple(tables), key, tuple(reads))
            return fn

        return register


@dataclass
class Catalog:
    """One app's catalog folder, loaded and checked (see the module docstring)."""

    name: str
    directory: Path
    schemas: dict[str, dict[str, Any]]
    client_only: frozenset[str] = frozenset()
    #: catalog.toml as parsed (tables, events, livestore); empty for a schemas-only folder.
    spec: dict[str, Any] = field(default_factory=dict)
    hooks: Hooks = field(default_factory=Hooks)
    #: (name, SQL text) of migrations/NNNN_name.sql, in order.
    migrations: list[tuple[str, str]] = field(default_factory=list)
    #: sha256 over every file the catalog is made of: a target records it, so a catalog
    #: changed between two runs of one migration is noticed.
    digest: str = ""
    bundled_name: str | None = None

    @property
    def has_projection(self) -> bool:
        """Whether the catalog can replay (declares tables), not only validate."""
        return bool(self.spec.get("tables"))

    @property
    def upcasters(self) -> Upcasters:
        return self.hooks.upcasters

    @property
    def schema_module(self) -> Path | None:
        """The app's LiveStore schema module (``[livestore] schema_module``, relative to the
        catalog folder), which the oracle rebuilds a log's state with; None if not given."""
        module = self.spec.get("livestore", {}).get("schema_module")
        return (self.directory / module).resolve() if module else None

    @property
    def client_documents(self) -> frozenset[str]:
        """The `<table>Set` events of the catalog's client documents (LiveStore generates
        them: client-document-def.ts)."""
        tables = self.spec.get("tables", {})
        return frozenset(f"{name}Set" for name, t in tables.items() if "client_document" in t)

    @classmethod
    def load(cls, directory: Path) -> Catalog:
        """Load the catalog in DIRECTORY.

        Raises CatalogError (one line, naming the file) for a missing folder, a schema that
        is not a JSON Schema, two schemas for one event, a catalog.toml that breaks the
        contract (schemas/catalog.schema.json), a bad migration file name or a hooks.py
        that fails to import or defines no ``hooks``.
        """
        if not directory.is_dir():
            raise CatalogError(f"{directory}: no such catalog directory")
        spec = _load_spec(directory)
        schemas = _load_schemas(directory)
        if not schemas:
            raise CatalogError(f"{directory}: no event schemas in this catalog")
        migrations = _load_migrations(directory)
        if spec.get("tables") and not migrations:
            raise CatalogError(f"{directory}: declares tables but has no {MIGRATIONS_DIR}/*.sql")
        digest = _digest(directory)
        hooks = _load_hooks(directory, digest)
        return cls(
            name=spec.get("name", directory.name),
            directory=directory,
            schemas=schemas,
            client_only=frozenset(spec.get("client_only", [])),
            spec=spec,
            hooks=hooks,
            migrations=migrations,
            digest=digest,
        )

    @classmethod
    def bundled(cls, name: str) -> Catalog:
        """A catalog shipped in schemas/, loaded (and checked) once per process.

        Raises CatalogError when there is no such bundled catalog.
        """
        if name not in _BUNDLED:
            directory = SCHEMAS_DIR / name
            if name not in bundled_catalog_names():
                known = ", ".join(bundled_catalog_names())
                raise CatalogError(f"no bundled catalog {name!r} (bundled: {known})")
            catalog = cls.load(directory)
            catalog.bundled_name = name
            _BUNDLED[name] = catalog
        return _BUNDLED[name]

    @property
    def reference(self) -> str:
        """How a target records this catalog: the bundled name, or the folder's path."""
        return self.bundled_name or str(self.directory.resolve())


_BUNDLED: dict[str, Catalog] = {}


def _load_spec(directory: Path) -> dict[str, Any]:
    path = directory / SPEC_FILE
    if not path.exists():
        return {}
    try:
        spec = tomllib.loads(path.read_text("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise CatalogError(f"{path}: not valid TOML ({exc})") from None
    _check_operations(spec, path)
    error = jsonschema.exceptions.best_match(_spec_validator().iter_errors(spec))
    if error is not None:
        raise CatalogError(f"{path}: {error.message} at {error.json_path}")
    return spec


#: The keys each operation of [events] takes (docs/catalogs.md), the verb first.
OPERATION_KEYS = {
    "insert": ("insert", "values", "on_conflict", "set"),
    "update": ("update", "set", "where"),
    "delete": ("delete", "where"),
}
OPERATION_REQUIRED = {"insert": ("values",), "update": ("set", "where"), "delete": ("where",)}


def _check_operations(spec: dict[str, Any], path: Path) -> None:
    """Name the key at fault in an [events] operation: the JSON Schema's oneOf can only
    say that an operation matches none of the three shapes."""
    events = spec.get("events")
    if not isinstance(events, dict):
        return
    for name, ops in events.items():
        for index, op in enumerate(ops if isinstance(ops, list) else [ops]):
            where = f'{path}: [events."{name}"]' + (
                f" #{index + 1}" if isinstance(ops, list) else ""
            )
            if not isinstance(op, dict):
                raise CatalogError(f"{where}: an operation is a table (insert, update or delete)")
            verbs = [v for v in OPERATION_KEYS if v in op]
            if len(verbs) != 1:
                raise CatalogError(
                    f"{where}: names {' and '.join(verbs) or 'no operation'}; "
                    "an operation is one of insert, update or delete"
                )
            verb = verbs[0]
            allowed = OPERATION_KEYS[verb]
            for key in op:
                if key not in allowed:
                    raise CatalogError(
                        f"{where}: `{key}` is not a key of {verb} (it takes {', '.join(allowed)})"
                    )
            missing = [k for k in OPERATION_REQUIRED[verb] if k not in op]
            if missing:
                raise CatalogError(f"{where}: {verb} needs {' and '.join(missing)}")


_SPEC_VALIDATOR: list[jsonschema.Draft202012Validator] = []


def _spec_validator() -> jsonschema.Draft202012Validator:
    if not _SPEC_VALIDATOR:
        _SPEC_VALIDATOR.append(
            jsonschema.Draft202012Validator(json.loads(SPEC_SCHEMA.read_text("utf-8")))
        )
    return _SPEC_VALIDATOR[0]


def _schema_files(directory: Path) -> list[Path]:
    """DIRECTORY's event schemas, by name (catalog.json, the metadata file of catalogs
    before catalog.toml, is not one)."""
    return sorted(p for p in directory.glob("*.json") if p.name != "catalog.json")


def _event_name(path: Path, doc: Any) -> str:
    """The event a schema file is for: its ``title``, else the file's name."""
    title = doc.get("title") if isinstance(doc, dict) else None
    return title if isinstance(title, str) and title else path.stem


def _load_schemas(directory: Path) -> dict[str, dict[str, Any]]:
    schemas: dict[str, dict[str, Any]] = {}
    for path in _schema_files(directory):
        try:
            doc = json.loads(path.read_text("utf-8"))
        except ValueError as exc:
            raise CatalogError(f"{path}: not a valid JSON Schema ({exc})") from None
        except RecursionError:
            raise CatalogError(f"{path}: not a valid JSON Schema (nested too deeply)") from None
        if not isinstance(doc, dict):
            raise CatalogError(
                f"{path}: an event's schema is a JSON object (with its args' properties), "
                f"not {json.dumps(doc)[:40]}"
            )
        try:
            check_schema(doc)
        except jsonschema.SchemaError as exc:
            # str(exc) is jsonschema's many-line explanation; its message and the place
            # in the schema are what a reader needs.
            raise CatalogError(
                f"{path}: not a valid JSON Schema ({_shortened(exc.message)} at {exc.json_path})"
            ) from None
        except RecursionError:
            # jsonschema recurses in Python: 97 nested `properties` pass at a command's
            # stack depth, 98 do not.
            raise CatalogError(
                f"{path}: cannot be checked as a JSON Schema: nested too deeply for jsonschema "
                "(about 95 levels of properties are its limit)"
            ) from None
        try:
            ecma_schema(doc)  # every pattern has a Python spelling (or ValueError)
        except ValueError as exc:
            raise CatalogError(f"{path}: not a valid JSON Schema ({exc})") from None
        name = _event_name(path, doc)
        if name in schemas:
            raise CatalogError(f"{path}: event {name} has two schemas in {directory}")
        schemas[name] = doc
    return schemas


#: The meta-schema every event schema is checked against, and the only ``$schema`` the
#: quick check (`check_schema`) takes as its own.
DRAFT_2020_12 = "https://json-schema.org/draft/2020-12/schema"
#: Deeper schemas are checked by jsonschema alone (see `_quick_valid`).
QUICK_DEPTH = 64


def check_schema(doc: Any) -> None:
    """Raise `jsonschema.SchemaError` unless DOC is a valid JSON Schema (draft 2020-12,
    whatever its ``$schema`` says), exactly as
    ``jsonschema.Draft202012Validator.check_schema`` decides.

    jsonschema_rs's meta-schema check answers first, about 50 times cheaper (4 ms a
    schema in jsonschema, 60 ms for ai-desk's 15, on every command that loads a catalog).
    Its "valid" is taken only where the two must agree (`_quick_valid`); anything else
    (an invalid schema, another ``$schema``) is decided, and explained, by jsonschema.
    tests/test_schema_check.py holds them to agreement on generated schemas.
    """
    if not _quick_valid(doc):
        jsonschema.Draft202012Validator.check_schema(doc)


def _quick_valid(doc: Any) -> bool:
    """Whether jsonschema_rs finds DOC valid against the 2020-12 meta-schema, and DOC is
    one jsonschema's check then finds valid too:

    * every ``$schema`` in DOC (at any depth) is `DRAFT_2020_12`: jsonschema_rs picks the
      meta-schema by ``$schema``, and would fetch an unknown one over the network;
    * DOC nests at most `QUICK_DEPTH` levels: jsonschema's check recurses in Python, and
      runs out of stack (RecursionError) on schemas jsonschema_rs checks;
    * every text under a ``pattern`` key and every key of a ``patternProperties`` object,
      at any depth, passes jsonschema's own ``regex`` format check (`_is_regex`): jsonschema
      also checks the meta-schema's ``format: regex`` (its only format check here: "uri"
      and "uri-reference" need packages that are not installed), jsonschema_rs does not.
      Keys at any depth, not only where they are keywords, so the test can only be
      stricter.
    """
    stack = [(doc, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > QUICK_DEPTH:
            return False
        if type(node) is list:
            stack.extend((item, depth + 1) for item in node)
        elif type(node) is dict:
            for key, value in node.items():
                if key == "$schema" and value != DRAFT_2020_12:
                    return False
                if key == "pattern" and type(value) is str and not _is_regex(value):
                    return False
                if key == "patternProperties" and type(value) is dict:
                    if not all(_is_regex(k) for k in value):
                        return False
                stack.append((value, depth + 1))
    try:
        return bool(jsonschema_rs.meta.is_valid(doc))
    except Exception:  # whatever it is, jsonschema decides
        return False


def _is_regex(pattern: str) -> bool:
    """PATTERN passes the ``regex`` format check `check_schema`'s jsonschema runs (its own
    checker, so the two cannot drift); anything it raises besides a verdict is a "no"."""
    try:
        return bool(jsonschema.Draft202012Validator.FORMAT_CHECKER.conforms(pattern, "regex"))
    except Exception:
        return False


def _shortened(text: str, limit: int = 160) -> str:
    """TEXT on one line, cut to LIMIT characters (a message quoting a whole subschema)."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _load_migrations(directory: Path) -> list[tuple[str, str]]:
    folder = directory / MIGRATIONS_DIR
    if not folder.is_dir():
        return []
    found = []
    for path in sorted(folder.iterdir()):
        if path.suffix != ".sql":
            continue
        if not MIGRATION_FILE.match(path.name):
            raise CatalogError(
                f"{path}: a migration is named NNNN_lower_snake_name.sql (e.g. 0001_app_tables.sql)"
            )
        found.append((path.stem, path.read_text("utf-8")))
    return found


def _digest(directory: Path) -> str:
    h = hashlib.sha256()
    files = [directory / SPEC_FILE, directory / HOOKS_FILE, *sorted(directory.glob("*.json"))]
    if (directory / MIGRATIONS_DIR).is_dir():
        files += sorted((directory / MIGRATIONS_DIR).glob("*.sql"))
    for path in files:
        if path.is_file():
            h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def _load_hooks(directory: Path, digest: str) -> Hooks:
    path = directory / HOOKS_FILE
    if not path.exists():
        return Hooks()
    # A module name of its own per catalog version, so two catalogs never share one.
    module_name = (
        f"_projector_catalog_{re.sub(r'[^0-9A-Za-z_]', '_', directory.name)}_{digest[:12]}"
    )
    module = sys.modules.get(module_name)
    if module is None:
        spec = importlib.util.spec_from_file_location(module_name, path)
        if spec is None or spec.loader is None:  # pragma: no cover - a .py file always loads
            raise CatalogError(f"{path}: cannot be loaded as a Python module")
        module = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            raise CatalogError(f"{path}: failed to import ({type(exc).__name__}: {exc})") from None
        sys.modules[module_name] = module
    hooks = getattr(module, "hooks", None)
    if not isinstance(hooks, Hooks):
        raise CatalogError(f"{path}: defines no `hooks = Hooks()` (from projector.catalog)")
    return hooks


def bundled_catalog_names() -> list[str]:
    """The catalogs shipped in schemas/ (folders with a catalog.toml)."""
    return sorted(p.name for p in SCHEMAS_DIR.iterdir() if (p / SPEC_FILE).is_file())


def _schema_names(directory: Path) -> set[str]:
    """The event names of the schemas in DIRECTORY, as `_load_schemas` names them, read
    without checking the schemas (detection loads and checks only the catalog it picks)."""
    names = set()
    for path in _schema_files(directory):
        try:
            doc = json.loads(path.read_text("utf-8"))
        except (OSError, ValueError):
            doc = None
        names.add(_event_name(path, doc))
    return names


def detect_catalog(event_names: Iterable[str]) -> Catalog:
    """The bundled catalog that knows most of the log's event names (on a tie, the first
    by name).

    Raises CatalogError when no catalog is bundled.
    """
    names = set(event_names)
    scored = [
        (-len(names & _schema_names(SCHEMAS_DIR / name)), name) for name in bundled_catalog_names()
    ]
    if not scored:
        raise CatalogError(f"{SCHEMAS_DIR}: no bundled catalog")
    return Catalog.bundled(min(scored)[1])


def resolve_catalog(value: str) -> Catalog:
    """A catalog named on the command line: a folder path, or a bundled catalog's name.

    A bundled catalog's name without a path separator means the bundled catalog, even
    when the working folder has a sub-folder of that name (an app's own ``todomvc/``);
    when that sub-folder holds a catalog.toml the name is refused as ambiguous, naming
    ``./NAME`` for the folder. Raises CatalogError.
    """
    path = Path(value)
    if value in bundled_catalog_names() and "/" not in value:
        if (path / SPEC_FILE).is_file():
            raise CatalogError(
                f"{value}: names both the bundled catalog and the catalog folder ./{value} "
                f"here; pass ./{value} for the folder, or run from another folder for the "
                "bundled one"
            )
        return Catalog.bundled(value)
    if path.is_dir():
        return Catalog.load(path)
    known = ", ".join(bundled_catalog_names())
    raise CatalogError(f"{value}: neither a catalog folder nor a bundled catalog ({known})")


def load_recorded(reference: str) -> Catalog:
    """The catalog a target recorded: a bundled name, or the path of a catalog folder.

    Raises CatalogError when it can no longer be found (a user's catalog folder moved).
    """
    if "/" not in reference and reference in bundled_catalog_names():
        return Catalog.bundled(reference)
    path = Path(reference)
    if path.is_dir():
        return Catalog.load(path)
    raise CatalogError(
        f"the catalog this target was migrated with ({reference}) is not found; "
        "pass it with --catalog"
    )


__all__ = [
    "Catalog",
    "CatalogError",
    "HandlerHook",
    "Hooks",
    "SCHEMAS_DIR",
    "bundled_catalog_names",
    "detect_catalog",
    "load_recorded",
    "resolve_catalog",
]


def _catalog_of_store(store: str) -> Catalog:
    """The bundled catalog that knows STORE's event names (as a first replay picks one),
    refused when it knows fewer than half of them. Raises CatalogError, EventsError."""
    from events.sources import open_source  # events.sources imports this module

    source = open_source(store)
    try:
        names = set(source.name_counts())
    finally:
        source.close()
    catalog = detect_catalog(names)
    known = len(names & _schema_names(catalog.directory))
    if not names or known * 2 < len(names):
        raise CatalogError(
            f"{store}: no bundled catalog knows its events (the closest, {catalog.name!r}, "
            f"knows {known} of {len(names)} names); pass CATALOG=NAME|DIR or SCHEMA=FILE"
        )
    return catalog


def main(argv: list[str]) -> int:
    """``python -m events.catalog schema-module NAME|DIR``: print the catalog's LiveStore
    schema module (for `make oracle CATALOG=...`); ``schema-module --store DIR``: that of
    the bundled catalog that knows the store's events (`make oracle` without CATALOG).
    Exit 1 with a one-line error."""
    usage = "usage: python -m events.catalog schema-module NAME|DIR | --store DIR"
    if (
        len(argv) not in (2, 3)
        or argv[0] != "schema-module"
        or (len(argv) == 3 and argv[1] != "--store")
    ):
        print(usage, file=sys.stderr)
        return 2
    from events.errors import EventsError

    try:
        catalog = _catalog_of_store(argv[2]) if len(argv) == 3 else resolve_catalog(argv[1])
        module = catalog.schema_module
    except (CatalogError, EventsError) as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    if module is None:
        print(f"Error: catalog {catalog.name} names no [livestore] schema_module", file=sys.stderr)
        return 1
    print(module)
    return 0


if __name__ == "__main__":
    # Run as events.catalog itself, not as a second copy named __main__, whose Hooks
    # class a catalog's hooks.py (importing projector.catalog) would not be an instance of.
    from events.catalog import main as _main

    raise SystemExit(_main(sys.argv[1:]))
