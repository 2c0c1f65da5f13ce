"""Projection handlers, compiled from a catalog: what each event does to the app's tables.

A catalog declares its projection in catalog.toml (see docs/catalogs.md), in the shapes
LiveStore's materializers take (``tables.x.insert(...)``, ``.update(...).where(...)``,
``.delete().where(...)``, ``.onConflict(...)``):

- ``insert``: a row from the args (column mapping, constants, the column's DDL default
  for what is not given); ``on_conflict`` = ``fail`` (LiveStore's plain INSERT: a key
  that is taken is an integrity break), ``ignore``, ``replace`` (an upsert replacing
  the row) or ``update`` (an upsert changing the given columns);
- ``update ... where`` the key: a partial update of the columns whose args are present
  (LiveStore's ``UPDATE ... WHERE id = ?``: a row that is not there is left alone);
  ``where`` other columns: a bulk update of every row that matches;
- ``delete ... where``: a hard delete of one row, or of every row that matches;
- several of these for one event, applied in order, all or nothing.

Client documents are the engine's: every table declared with ``client_document`` gets
the handler of LiveStore's generated ``<table>Set`` event. Values are encoded by the
target column's codec, as LiveStore's column types store them (`encode`). A foreign key
of the target is checked before a row is written, so an event whose row would point
nowhere raises `IntegrityBreak` having changed nothing, and is parked.

Python handlers registered in the catalog's hooks.py are used as they are. Handlers read
and write whole rows of the batch's `RowStore`, which writes them behind the batch.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from events.catalog import HOOKS_FILE, SPEC_FILE, Catalog, HandlerHook
from events.encoding import iso_to_epoch_ms, js_json
from events.errors import CatalogError
from events.fastpath import loads
from events.validation import sample
from projector.errors import HookError, IntegrityBreak, Unstorable
from projector.store import RowStore
from projector.target import Reference, Table, catalog_tables

#: An event's parsed args: a JSON object as a rule, but whatever JSON value the event's schema
#: allows (getters read MISSING from a value that is no object). Typed Any: the compiled
#: build would otherwise refuse what the pure one applies (docs: README, Compiled hot path).
Args = Any
Apply = Callable[[RowStore, Args], None]
Getter = Callable[[Any], Any]
#: What a getter returns for an arg the event does not carry.
MISSING: Final[Any] = object()
ON_CONFLICT = ("fail", "ignore", "replace", "update")
CLIENT_DOCUMENT_EVENT = "{table}Set"  # LiveStore's client-document-def.ts names it so


def any_row(table: str) -> str:
    """The parked-entity name that holds back every row of TABLE."""
    return f"{table}:*"


def entity_text(entities: list[str]) -> str | None:
    """How a parked event's entities are stored in ``_projector_parked.entity``: the one
    entity itself, or a JSON array of them for an event touching several rows."""
    if not entities:
        return None
    return entities[0] if len(entities) == 1 else json.dumps(entities, ensure_ascii=False)


def entity_list(text: str | None) -> list[str]:
    """The entities stored by `entity_text` (an entity starts with its table's name,
    never with ``[``)."""
    if not text:
        return []
    if text.startswith("["):
        try:
            found = json.loads(text)
        except ValueError:
            return [text]
        return [e for e in found if isinstance(e, str)]
    return [text]


@dataclass(frozen=True)
class Handler:
    """How one event name changes the tables.

    ``rows`` are the (table, getter) pairs naming the rows the event touches one by one
    (its entities); ``bulk`` the tables it touches by a condition (every row of them is
    its entity); ``reads`` the (table, getter) pairs of rows it looks at, fetched in bulk;
    ``queries`` the (table, column) pairs it finds rows by other than their key (a bulk
    condition, a reference to a row being deleted): an index on those pays during replay.
    """

    name: str
    apply: Apply
    tables: tuple[str, ...]
    rows: tuple[tuple[str, Getter], ...] = ()
    bulk: tuple[str, ...] = ()
    reads: tuple[tuple[str, Getter], ...] = ()
    queries: tuple[tuple[str, str], ...] = ()
    #: ``collect(args, keys)`` adds the key of each row in ``reads`` to ``keys[table]``
    #: (a set for every table the handlers read), when it is text or an integer.
    collect: Callable[[Any, dict[str, set[Any]]], None] = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "collect", _collect_function(self.reads))

    def entities(self, args: Any) -> list[str]:
        """``table:key`` of each row the event touches, when the args name it, and
        ``table:*`` for a table it touches by a condition."""
        return self._entities(args, None)

    def entities_trusted(
        self, args: Any, fits: Callable[[tuple[str, ...], Any], bool]
    ) -> list[str]:
        """`entities` of an event that is not applied (parked): a row whose key FITS (path
        of the arg, value) refuses stands for its whole table, as does a row the args do
        not name, since a later event on the row it meant must wait behind it too."""
        return self._entities(args, fits)

    def _entities(
        self, args: Any, fits: Callable[[tuple[str, ...], Any], bool] | None
    ) -> list[str]:
        found = []
        for table, get in self.rows:
            value = get(args)
            if (type(value) is str or type(value) is int) and (
                fits is None or fits(_PATHS.get(get, ()), value)
            ):
                found.append(f"{table}:{value}")
            elif fits is not None:
                found.append(any_row(table))
        found.extend(any_row(t) for t in self.bulk)
        return found

    @property
    def any_rows(self) -> tuple[str, ...]:
        """The entities that stand for every row of the tables the handler writes."""
        return tuple(any_row(t) for t in self.tables)


# ---------------------------------------------------------------- values


#: The args path each getter reads (`_getter`): a one-step path is read in place.
_PATHS: dict[Getter, tuple[str, ...]] = {}


def _getter(path: tuple[str, ...]) -> Getter:
    """A function reading ARGS at PATH (MISSING where a step is absent)."""
    if len(path) == 1:
        (name,) = path

        def get_one(args: Any) -> Any:
            return args.get(name, MISSING) if type(args) is dict else MISSING

        _PATHS[get_one] = path
        return get_one

    def get_path(args: Any) -> Any:
        for step in path:
            if type(args) is not dict or step not in args:
                return MISSING
            args = args[step]
        return args

    _PATHS[get_path] = path
    return get_path


def _arg_path(value: Any) -> tuple[str, ...] | None:
    """The args path a value of catalog.toml reads (``"$.a.b"``, ``{arg = "a.b"}``), or
    None for a constant."""
    if isinstance(value, str) and value.startswith("$."):
        return tuple(value[2:].split("."))
    if isinstance(value, dict) and len(value) == 1:
        ((form, inner),) = value.items()
        if form == "arg" and isinstance(inner, str) and inner:
            return tuple(inner.removeprefix("$.").split("."))
    return None


def _check_arg_paths(spec: dict[str, Any], known: frozenset[str] | None, where: str) -> None:
    """Refuse a value of operation SPEC reading an arg the event's schema does not declare
    (KNOWN: `declared_args`): it would never be there, so its column would silently never
    change (``set = { title = "$.titel" }``)."""
    if known is None:
        return
    for part in ("values", "set", "where"):
        for column, value in spec.get(part, {}).items():
            path = _arg_path(value)
            if path is not None and path[0] not in known:
                raise CatalogError(
                    f"{where}: {part}: {column} reads the arg {'.'.join(path)!r}, which the "
                    f"event's schema does not declare (it declares {', '.join(sorted(known))})"
                )


def _reference(value: Any, where: str) -> tuple[Getter | None, Any]:
    """(getter, None) for an args reference, or (None, constant) for a constant.

    ``"$.a.b"`` and ``{arg = "a.b"}`` read the args; ``{const = v}`` is v;
    ``{json = "text"}`` is the JSON value of text (TOML has no null: ``{json = "null"}``);
    any other value is itself.
    """
    path = _arg_path(value)
    if path is not None:
        return _getter(path), None
    if isinstance(value, dict) and len(value) == 1:
        ((form, inner),) = value.items()
        if form == "const":
            return None, inner
        if form == "json":
            try:
                return None, json.loads(inner)
            except (TypeError, ValueError) as exc:
                raise CatalogError(f"{where}: {{json = ...}} is not JSON ({exc})") from None
    return None, value


def _as_boolean(value: Any) -> int:
    if type(value) is not bool:
        raise TypeError(f"not a boolean: {value!r}")
    return 1 if value else 0


def _identity(value: Any) -> Any:
    return value


def _datetime_ms(value: Any) -> int:
    if type(value) is not str:
        raise TypeError(f"not an ISO-8601 date: {value!r}")
    return iso_to_epoch_ms(value)


#: How a value is stored in a column of each LiveStore column type
#: (field-defs.ts: json -> TEXT of JSON.stringify, boolean -> 0/1, datetime -> ISO text,
#: integer with Schema.DateFromNumber -> epoch milliseconds).
CODECS: dict[str, Callable[[Any], Any]] = {
    "text": _identity,
    "integer": _identity,
    "real": _identity,
    "datetime": _identity,
    "boolean": _as_boolean,
    "json": js_json,
    "datetime_ms": _datetime_ms,
}


def encoder(table: Table, column: str) -> Callable[[Any], Any]:
    """The function storing a value in TABLE.COLUMN the way its LiveStore type does."""
    return CODECS[table.codecs.get(column, "text")]


@dataclass(frozen=True)
class _Columns:
    """A compiled column mapping: values read from the args, and constants.

    ``values(args)``: the mapped columns' stored values (a new dict); an absent arg
    leaves its column out. With a BASE (an insert's defaults, every column), the values
    are set over a copy of it: a whole new row, ``{**base, **values}`` in one dict.
    Raises ValueError naming the column when a value does not fit its codec. Written out
    as code by `_values_function`.
    """

    table: str
    from_args: tuple[tuple[str, Getter, Callable[[Any], Any]], ...]
    constants: dict[str, Any]
    base: dict[str, Any] | None = None
    values: Callable[[Any], dict[str, Any]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "values", _values_function(self))

    def getter(self, column: str) -> Getter | None:
        for name, get, _ in self.from_args:
            if name == column:
                return get
        return None


def _read_plan(get: Getter) -> tuple[str, Getter | None]:
    """How the compiled closures read what GET reads: (the arg's name, None) for a
    one-step path, read in place with the args' ``get``; else ("", GET), called."""
    path = _PATHS.get(get)
    if path is not None and len(path) == 1:
        return path[0], None
    return "", get


def _values_function(columns: _Columns) -> Callable[[Any], dict[str, Any]]:
    """`_Columns.values`: for each mapped column, read its arg (``args.get(name)`` for a
    one-step path, else its getter), and when present store it encoded (an identity codec
    is not called), over a copy of the constants (and the base: `_Columns`). A loop over
    the columns, compiled with this module (events/_native.py)."""
    base = columns.base
    constants = columns.constants if base is None else {**base, **columns.constants}
    reads: list[tuple[str, str, Getter | None, Callable[[Any], Any] | None, str]] = []
    for column, get, encode in columns.from_args:
        name, getter = _read_plan(get)
        codec = None if encode is _identity else encode
        reads.append((column, name, getter, codec, f"{columns.table}.{column}: "))
    if not reads:

        def constant_values(args: Any) -> dict[str, Any]:
            return dict(constants)

        return constant_values
    plan = tuple(reads)

    def values(args: Any) -> dict[str, Any]:
        row: dict[str, Any] = dict(constants)
        # Every getter reads MISSING from a value that is no object.
        found: dict[str, Any] = args if type(args) is dict else {}
        for column, name, get, encode, where in plan:
            value = found.get(name, MISSING) if get is None else get(found)
            if value is MISSING:
                continue
            if encode is None:
                row[column] = value
                continue
            try:
                row[column] = encode(value)
            except (TypeError, ValueError, OverflowError) as exc:
                raise ValueError(where + str(exc)) from None
        return row

    return values


def _collect_function(reads: tuple[tuple[str, Getter], ...]) -> Callable[..., None]:
    """`Handler.collect`: each read's key (``args.get(name)`` for a one-step path, else
    its getter) added to its table's set when it is text or an integer. A loop over the
    reads, compiled with this module (events/_native.py)."""
    steps: tuple[tuple[str, str, Getter | None], ...] = tuple(
        (table, *_read_plan(get)) for table, get in reads
    )

    def collect(args: Any, keys: dict[str, set[Any]]) -> None:
        if type(args) is not dict:
            return
        found: dict[str, Any] = args
        for table, name, get in steps:
            value = found.get(name, MISSING) if get is None else get(found)
            if type(value) is str or type(value) is int:
                keys[table].add(value)

    return collect


def _columns(
    table: Table, mapping: dict[str, Any], where: str, base: dict[str, Any] | None = None
) -> _Columns:
    unknown = sorted(set(mapping) - set(table.columns))
    if unknown:
        raise CatalogError(f"{where}: {table.name} has no column(s) {unknown}")
    from_args = []
    constants = {}
    for column, value in mapping.items():
        get, constant = _reference(value, f"{where}: {column}")
        encode = encoder(table, column)
        if get is not None:
            from_args.append((column, get, encode))
        else:
            try:
                constants[column] = None if constant is None else encode(constant)
            except (TypeError, ValueError) as exc:
                raise CatalogError(f"{where}: {column}: {exc}") from None
    return _Columns(table.name, tuple(from_args), constants, base)


def _check_references(store: RowStore, table: Table, row: dict[str, Any]) -> None:
    """Raise IntegrityBreak when a foreign-key column of ROW names no existing row."""
    for ref in table.references:
        value = row.get(ref.column)
        if value is not None and type(value) is not str and type(value) is not int:
            raise ValueError(
                f"{table.name}.{ref.column}: a {type(value).__name__} names no "
                f"{ref.noun} (a key is text or an integer)"
            )
        if value is not None and store.get(ref.table, value) is None:
            raise IntegrityBreak(f"{table.name}.{ref.column}: {ref.noun} {value!r} does not exist")


def _referrers(table: Table, tables: dict[str, Table]) -> list[tuple[str, str]]:
    """The (table, column) foreign keys pointing at TABLE (derived tables follow their
    parent and are left out)."""
    return [
        (other.name, ref.column)
        for other in tables.values()
        if other.derived is None
        for ref in other.references
        if ref.table == table.name
    ]


def _check_unreferenced(
    store: RowStore, table: Table, key: Any, referrers: list[tuple[str, str]]
) -> None:
    """Raise IntegrityBreak when deleting TABLE's row KEY would leave a row pointing nowhere
    (LiveStore keeps such rows; the target's foreign key would break)."""
    for child, column in referrers:
        if store.referenced(child, column, key):
            raise IntegrityBreak(
                f"{table.noun} {key!r} is still referenced by {child}.{column}; "
                "deleting it would break that reference"
            )


def _reference_reads(table: Table, columns: _Columns) -> list[tuple[str, Getter]]:
    reads = []
    for ref in table.references:
        get = columns.getter(ref.column)
        if get is not None:
            reads.append((ref.table, get))
    return reads


def _row_key(value: Any, table: Table) -> Any:
    if type(value) is not str and type(value) is not int:
        shown = "missing" if value is MISSING else repr(value)[:40]
        raise ValueError(f"{table.name}.{table.row_key}: the row's key is {shown}")
    return value


# ---------------------------------------------------------------- operations


@dataclass
class _Op:
    apply: Apply
    table: str
    row: Getter | None = None  # names the one row it touches (None: a bulk op)
    reads: tuple[tuple[str, Getter], ...] = ()
    queries: tuple[tuple[str, str], ...] = ()  # see Handler.queries


def _insert(table: Table, spec: dict[str, Any], where: str) -> _Op:
    key = table.row_key
    assert key is not None
    # The new row: the columns' defaults, then the mapped values (`_Columns.base`).
    defaults = {c: table.defaults[c] for c in table.columns}
    columns = _columns(table, spec["values"], where, defaults)
    key_get = columns.getter(key)
    if key_get is None and key not in columns.constants:
        raise CatalogError(f"{where}: values must give the key column {key!r}")
    on_conflict = spec.get("on_conflict", "fail")
    if (on_conflict == "update") != ("set" in spec):
        raise CatalogError(
            f'{where}: on_conflict = "update" goes with set = {{...}}, the columns '
            "LiveStore's .onConflict(key, 'update', {...}) changes (and set with nothing else)"
        )
    changes = _columns(table, spec["set"], f"{where}: set") if "set" in spec else None
    name, noun, references = table.name, table.noun, bool(table.references)

    def insert(store: RowStore, args: Args) -> None:
        row = columns.values(args)
        row_key = _row_key(row[key], table)
        if references:
            _check_references(store, table, row)
        if on_conflict == "replace":
            store.put(name, row_key, row)
            return
        existing = store.get(name, row_key)
        if existing is None:
            store.put(name, row_key, row)
        elif on_conflict == "fail":
            raise IntegrityBreak(f"{noun} {row_key!r} already exists")
        elif changes is not None:  # "update"
            values = changes.values(args)
            if references:
                _check_references(store, table, values)
            store.put(name, row_key, {**existing, **values})

    reads = _reference_reads(table, columns)
    if changes is not None:
        reads += _reference_reads(table, changes)
    if on_conflict != "replace" and key_get is not None:
        reads.append((name, key_get))
    return _Op(insert, name, key_get, tuple(reads))


def _split_where(table: Table, spec: dict[str, Any], where: str) -> tuple[Getter | None, _Columns]:
    """(getter of the key, the other conditions): a where naming the key is a row op."""
    conditions = _columns(table, spec["where"], f"{where}: where")
    key = table.row_key
    if key is None or key not in spec["where"]:
        return None, conditions
    key_get = conditions.getter(key)
    if key_get is None:
        raise CatalogError(f"{where}: where {key} must come from the args")
    rest = {c: v for c, v in spec["where"].items() if c != key}
    return key_get, _columns(table, rest, f"{where}: where") if rest else _Columns(
        table.name, (), {}
    )


def _matches(row: dict[str, Any], conditions: dict[str, Any]) -> bool:
    return all(row[c] == v for c, v in conditions.items())


def _update(table: Table, spec: dict[str, Any], where: str) -> _Op:
    changes = _columns(table, spec["set"], f"{where}: set")
    key_get, conditions = _split_where(table, spec, where)
    name, references = table.name, bool(table.references)
    reads = _reference_reads(table, changes)
    if key_get is None:

        def update_where(store: RowStore, args: Args) -> None:
            values = changes.values(args)
            if not values:
                return
            if references:
                _check_references(store, table, values)
            for row_key, row in store.matching(name, conditions.values(args)):
                store.put(name, row_key, {**row, **values})

        return _Op(update_where, name, None, tuple(reads), _queries(name, conditions))

    def update(store: RowStore, args: Args) -> None:
        values = changes.values(args)
        if not values:
            return
        row_key = _row_key(key_get(args), table)
        row = store.get(name, row_key)
        if row is None or not _matches(row, conditions.values(args)):
            return
        if references:
            _check_references(store, table, values)
        store.put(name, row_key, {**row, **values})

    return _Op(update, name, key_get, (*reads, (name, key_get)))


def _delete(
    table: Table, spec: dict[str, Any], where: str, referrers: list[tuple[str, str]]
) -> _Op:
    key_get, conditions = _split_where(table, spec, where)
    name = table.name
    if key_get is None:

        def delete_where(store: RowStore, args: Args) -> None:
            found = store.matching(name, conditions.values(args))
            for row_key, _ in found:  # all checked first: the event deletes all or none
                _check_unreferenced(store, table, row_key, referrers)
            for row_key, _ in found:
                store.delete(name, row_key)

        return _Op(delete_where, name, queries=(*_queries(name, conditions), *referrers))

    if not conditions.from_args and not conditions.constants and not referrers:

        def delete(store: RowStore, args: Args) -> None:
            # No read needed: deleting a row that is not there changes nothing.
            store.delete(name, _row_key(key_get(args), table))

        return _Op(delete, name, key_get)

    def delete_if(store: RowStore, args: Args) -> None:
        row_key = _row_key(key_get(args), table)
        row = store.get(name, row_key)
        if row is not None and _matches(row, conditions.values(args)):
            _check_unreferenced(store, table, row_key, referrers)
            store.delete(name, row_key)

    return _Op(delete_if, name, key_get, ((name, key_get),), tuple(referrers))


def _queries(table: str, conditions: _Columns) -> tuple[tuple[str, str], ...]:
    """(TABLE, column) of each column a bulk operation finds rows by."""
    return tuple(
        (table, c) for c in (*(c for c, _, _ in conditions.from_args), *conditions.constants)
    )


_OPS = {"insert": _insert, "update": _update}


def _compile_ops(
    name: str,
    specs: list[dict[str, Any]],
    tables: dict[str, Table],
    spec_path: str,
    known: frozenset[str] | None,
) -> Handler:
    """The handler of event NAME's operations SPECS ([events] in catalog.toml, at
    SPEC_PATH, which errors name); KNOWN: the args its schema declares (`declared_args`)."""
    ops = []
    for index, spec in enumerate(specs):
        verb = next(v for v in ("insert", "update", "delete") if v in spec)
        where = f'{spec_path}: [events."{name}"]' + (f" #{index + 1}" if len(specs) > 1 else "")
        _check_arg_paths(spec, known, where)
        table = tables.get(spec[verb])
        if table is None:
            raise CatalogError(f"{where}: {verb} into {spec[verb]!r}, which [tables] lacks")
        if table.derived is not None:
            raise CatalogError(f"{where}: {table.name} is derived; the projector writes it")
        if table.row_key is None:
            keyed = (
                f"is keyed by several columns ({', '.join(table.key)})"
                if table.key
                else "has no primary key"
            )
            raise CatalogError(
                f"{where}: {table.name} {keyed}; an operation writes a table by its "
                "single-column primary key"
            )
        if verb == "delete":
            ops.append(_delete(table, spec, where, _referrers(table, tables)))
        else:
            ops.append(_OPS[verb](table, spec, where))
    applies = [op.apply for op in ops]
    if len(applies) == 1:
        apply = applies[0]
    else:

        def apply(store: RowStore, args: Args) -> None:
            with store.savepoint():
                for step in applies:
                    step(store, args)

    return Handler(
        name=name,
        apply=apply,
        tables=tuple(dict.fromkeys(op.table for op in ops)),
        rows=tuple((op.table, op.row) for op in ops if op.row is not None),
        bulk=tuple(dict.fromkeys(op.table for op in ops if op.row is None)),
        reads=tuple(read for op in ops for read in op.reads),
        queries=tuple(dict.fromkeys(query for op in ops for query in op.queries)),
    )


def _client_document(table: Table) -> Handler:
    """The handler of LiveStore's ``<table>Set`` for a client document table.

    LiveStore runs ``INSERT ... ON CONFLICT (id) DO UPDATE SET value = json_set(value,
    '$.key', json(?), ...)`` (client-document-def.ts). The same merge is done here on the
    parsed document: a key already there keeps its place, a new key goes last and a nested
    object is replaced whole, so the stored text is byte-identical to json_set's
    (tests/test_handlers.py proves it against SQLite's json_set). A set with no keys
    changes nothing (LiveStore's ``DO NOTHING``).
    """
    name, noun = table.name, table.noun
    default = table.client_document or {}

    def set_document(store: RowStore, args: Args) -> None:
        if type(args) is not dict:
            raise ValueError(f"its args are not a JSON object: {sample(args)}")
        value = args.get("value")
        if type(value) is not dict:  # LiveStore's partial set of a Struct's fields
            raise ValueError(f"the value of {noun} is not a JSON object: {sample(value)}")
        _row_key(args.get("id", MISSING), table)
        row = store.get(name, args["id"])
        if row is None:
            # mergeDefaultValues: `value[k] ?? default[k]`, so a null takes the default.
            inserted = {**default, **{k: v for k, v in value.items() if v is not None}}
            store.put(name, args["id"], {"id": args["id"], "value": js_json(inserted)})
        elif value:
            merged = loads(row["value"])  # msgspec: json.loads' value, a third the cost
            merged.update(value)
            store.put(name, args["id"], {"id": args["id"], "value": js_json(merged)})

    get_id = _getter(("id",))
    return Handler(
        CLIENT_DOCUMENT_EVENT.format(table=name),
        set_document,
        (name,),
        rows=((name, get_id),),
        reads=((name, get_id),),
    )


def declared_args(schema: Any) -> frozenset[str] | None:
    """The top-level arg names an event's JSON Schema declares: its ``properties`` (and
    those of its ``allOf``/``anyOf``/``oneOf`` branches), or None when it declares none
    or cannot say (``patternProperties``, a ``$ref``): then any name may be carried."""
    found: set[str] = set()
    declared = False
    stack = [schema]
    while stack:
        node = stack.pop()
        if not isinstance(node, dict):
            continue
        if "patternProperties" in node or "$ref" in node:
            return None
        properties = node.get("properties")
        if isinstance(properties, dict):
            found.update(properties)
            declared = True
        for branches in ("allOf", "anyOf", "oneOf"):
            if isinstance(node.get(branches), list):
                stack.extend(node[branches])
    return frozenset(found) if declared else None


def _undeclared(path: str, known: frozenset[str] | None) -> bool:
    """Whether the args path PATH (``"a.b"``, ``"$.a.b"``) starts with a name KNOWN (the
    event's declared args, `declared_args`) lacks."""
    return known is not None and path.removeprefix("$.").split(".")[0] not in known


class HookRows:
    """What a hooks.py handler gets as ``rows``: the batch's `RowStore` (``get``, ``put``,
    ``delete``), held to the contract of docs/catalogs.md.

    ``put(table, key, row)`` takes a dict of every column of TABLE (no column it lacks,
    none left out) whose key column holds KEY; ``put`` and ``delete`` write only the
    handler's ``tables``; ``get`` reads any table with a single-column key. A breach
    raises HookError naming hooks.py, the handler and the table or column, so the event
    is refused instead of losing a misspelled column silently. Only Python handlers pay
    for these checks; declared operations are checked when the catalog compiles.
    """

    __slots__ = ("_store", "_where", "_writes", "_keys")

    def __init__(
        self,
        store: RowStore,
        where: str,
        writes: dict[str, frozenset[str]],
        keys: dict[str, str],
    ):
        self._store = store
        self._where = where
        self._writes = writes
        self._keys = keys

    def get(self, table: str, key: Any) -> dict[str, Any] | None:
        """The row of TABLE with KEY as the batch sees it, or None. Do not mutate it: `put`."""
        if table not in self._keys:
            raise HookError(
                f"{self._where} reads {table!r}, which is not a table of the catalog with a "
                "single-column key"
            )
        return self._store.get(table, key)

    def put(self, table: str, key: Any, row: dict[str, Any]) -> None:
        """Set the whole row of TABLE with KEY (a new dict, holding every column)."""
        columns = self._written(table)
        if type(row) is not dict:
            raise HookError(
                f"{self._where} puts a {type(row).__name__} into {table}, not a dict of its columns"
            )
        if row.keys() != columns:
            unknown = sorted(set(row) - columns)
            missing = sorted(columns - set(row))
            problem = (
                f"column(s) {unknown} that {table} lacks"
                if unknown
                else f"a row without column(s) {missing}"
            )
            raise HookError(f"{self._where} puts {problem} (`rows.put` takes every column)")
        for name, value in row.items():
            if type(value) not in _BINDABLE or (
                type(value) is int and not -(2**63) <= value < 2**63
            ):
                raise HookError(f"{self._where} puts {_unstorable(value)} into {table}.{name}")
        column = self._keys[table]
        if row[column] != key:
            raise HookError(
                f"{self._where} puts a row of {table} whose {column} is {row[column]!r} "
                f"under the key {key!r}"
            )
        self._store.put(table, key, row)

    def delete(self, table: str, key: Any) -> None:
        """Delete the row of TABLE with KEY (nothing happens when it is not there)."""
        self._written(table)
        self._store.delete(table, key)

    def _written(self, table: str) -> frozenset[str]:
        columns = self._writes.get(table)
        if columns is None:
            raise HookError(
                f"{self._where} writes {table!r}, which is not among its tables "
                f"{tuple(self._writes)}"
            )
        if table not in self._keys:
            raise HookError(
                f"{self._where} writes {table!r}, which is derived or has no single-column "
                "key (rows are put by their key)"
            )
        return columns


#: What sqlite3 binds as a column value (https://docs.python.org/3/library/sqlite3.html,
#: "How to adapt custom Python types": the types SQLite natively supports), booleans as 0/1.
_BINDABLE = frozenset({type(None), int, float, str, bytes, bool})


def _unstorable(value: Any) -> str:
    """Why VALUE cannot go into a column, for `HookRows.put`'s HookError."""
    if type(value) is int:
        return f"{value}, beyond SQLite's 64-bit integers,"
    return f"a {type(value).__name__}, which SQLite cannot store (text, numbers, bytes or None),"


def hook_bug(exc: BaseException) -> bool:
    """Whether EXC, raised through hooks.py code, is that code's fault, so its event is
    invalid: anything but Ctrl-C and the projector's own stop (a SIGTERM, raised as a
    BaseException of projector.cli wherever the signal lands, the hook included)."""
    if isinstance(exc, KeyboardInterrupt):
        return False
    return isinstance(exc, Exception) or not type(exc).__module__.startswith("projector")


def raised_at(exc: BaseException, path: str) -> str:
    """``KeyError: 'x' at line 12``: EXC, and the last line of the file PATH (hooks.py)
    it passed through."""
    line = None
    path = os.path.realpath(path)
    trace = exc.__traceback__
    while trace is not None:
        if os.path.realpath(trace.tb_frame.f_code.co_filename) == path:
            line = trace.tb_lineno
        trace = trace.tb_next
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return text + (f" at line {line}" if line else "")


def _python(hook: HandlerHook, tables: dict[str, Table], catalog: Catalog) -> Handler:
    # Resolved: a parked event's reason names it the same whichever way the catalog was
    # given, relative, absolute or through a link (replay-parked compares the reasons
    # before and after), as the target records the catalog (`Catalog.reference`).
    path = os.path.realpath(f"{catalog.directory}/{HOOKS_FILE}")
    where = f"{path}: handler {getattr(hook.fn, '__name__', '?')} of {hook.name}"
    for table in hook.tables:
        if table not in tables:
            raise CatalogError(f"{where} writes {table!r}, which [tables] lacks")
    known = declared_args(catalog.schemas.get(hook.name))
    fields = ([("key", hook.key)] if hook.key else []) + [("reads", f) for _, f in hook.reads]
    for option, arg in fields:
        if _undeclared(arg, known):
            assert known is not None
            raise CatalogError(
                f"{where}: {option} names the arg {arg!r}, which the schema of {hook.name} "
                f"does not declare (it declares {', '.join(sorted(known))})"
            )
    keys = {
        t.name: t.row_key for t in tables.values() if t.row_key is not None and t.derived is None
    }
    for table, _ in hook.reads:
        if table not in keys:
            raise CatalogError(
                f"{where} reads {table!r}, which is not a table of [tables] with a "
                "single-column key"
            )
    fn = hook.fn
    writes = {t: frozenset(tables[t].columns) for t in hook.tables}

    def apply(store: RowStore, args: Args) -> None:
        try:
            with store.savepoint():  # the hook's writes are all or nothing
                fn(HookRows(store, where, writes, keys), args)
        except (IntegrityBreak, HookError, Unstorable):  # Unstorable: the value's fault
            raise
        except BaseException as exc:
            if not hook_bug(exc):
                raise
            # The hook's bug: an exception, sys.exit, or its own BaseException
            raise HookError(f"{where} raised {raised_at(exc, path)}") from exc

    key = _getter(tuple(hook.key.removeprefix("$.").split("."))) if hook.key else None
    rows = tuple((t, key) for t in hook.tables[:1] if key is not None)
    reads = tuple((t, _getter(tuple(f.removeprefix("$.").split(".")))) for t, f in hook.reads)
    return Handler(hook.name, apply, hook.tables, rows=rows, reads=reads)


def _check_upcasters(catalog: Catalog, handlers: dict[str, Handler]) -> None:
    """Raise CatalogError for an upcaster (hooks.py) that cannot work: one from or to a
    name with no schema (its events are unknown before it runs, or a misspelled name
    leaves them without a handler), in a cycle, or from a name that also has a handler
    (which would never run: the chain's current name takes the event)."""
    path = f"{catalog.directory}/{HOOKS_FILE}"
    steps = catalog.upcasters.steps
    for from_name, (to_name, step) in steps.items():
        where = f"{path}: upcaster {getattr(step, '__name__', '?')} ({from_name} -> {to_name})"
        for end, name in (("reads", from_name), ("writes", to_name)):
            if name not in catalog.schemas:
                raise CatalogError(
                    f"{where} {end} {name}, which has no schema in the catalog ({name}.json)"
                )
        try:
            catalog.upcasters.current_name(from_name)
        except ValueError as exc:
            raise CatalogError(f"{where}: {exc}") from None
        if from_name in handlers:
            raise CatalogError(
                f"{where}: {from_name} also has a handler (catalog.toml's [events] or a "
                "hooks.py handler), which would never run (its events are upcast and applied "
                f"as {catalog.upcasters.current_name(from_name)}); remove one"
            )


_COMPILED: dict[tuple[str, str], tuple[dict[str, Table], Handlers]] = {}


def compile_catalog(catalog: Catalog) -> tuple[dict[str, Table], Handlers]:
    """CATALOG's tables and handlers, checked whole (in a scratch database) before any
    target is touched; cached per catalog folder and digest.

    Raises CatalogError for anything in the catalog that does not fit together.
    """
    key = (str(catalog.directory.resolve()), catalog.digest)
    if key not in _COMPILED:
        tables = catalog_tables(catalog)
        _COMPILED[key] = (tables, Handlers(catalog, tables))
    return _COMPILED[key]


class Handlers:
    """A catalog's handlers, by the (current) event name they apply.

    Raises CatalogError at construction when the projection names a table or column
    the target does not have, or two handlers claim one event.
    """

    def __init__(self, catalog: Catalog, tables: dict[str, Table]):
        self.catalog = catalog
        self.by_name: dict[str, Handler] = {}
        for table in tables.values():
            if table.client_document is not None:
                self._add(_client_document(table))
        spec_path = f"{catalog.directory}/{SPEC_FILE}"
        for name, spec in catalog.spec.get("events", {}).items():
            specs = spec if isinstance(spec, list) else [spec]
            known = declared_args(catalog.schemas.get(name))
            self._add(_compile_ops(name, specs, tables, spec_path, known))
        for hook in catalog.hooks.handlers.values():
            self._add(_python(hook, tables, catalog))
        _check_upcasters(catalog, self.by_name)

    def _add(self, handler: Handler) -> None:
        if handler.name in self.by_name:
            raise CatalogError(
                f"{self.catalog.directory}: event {handler.name} has two handlers "
                "(catalog.toml, a client document or hooks.py)"
            )
        self.by_name[handler.name] = handler

    def queried(self) -> set[tuple[str, str]] | None:
        """Every (table, column) some handler finds rows by other than their key, or None
        when a Python handler (hooks.py) may query anything."""
        if self.catalog.hooks.handlers:
            return None
        return {query for handler in self.by_name.values() for query in handler.queries}

    def for_name(self, name: str) -> Handler | None:
        """The handler that applies NAME, following the catalog's upcast chain."""
        try:
            return self.by_name.get(self.catalog.upcasters.current_name(name))
        except ValueError:
            return None


__all__ = [
    "CODECS",
    "compile_catalog",
    "entity_list",
    "entity_text",
    "Handler",
    "Handlers",
    "MISSING",
    "Reference",
    "any_row",
    "encoder",
    "raised_at",
]
