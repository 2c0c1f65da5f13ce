"""Projection handlers: one per current event name, with LiveStore's materializer semantics.

Each handler is registered by decorator with the table it writes and the args field that
names the row (the entity); registering a name twice is an error. Old event versions
reach these handlers through `events.upcast`. Handlers read and write whole rows of the
batch's `RowStore` (which writes them to the target behind the batch, in key order).
Each handler checks what it needs (a persona before a memory or a draft; a new id is
new) and then makes its one change, so an event that would break integrity raises
`IntegrityBreak` having changed nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from events.encoding import iso_to_epoch_ms, js_json
from events.upcast import UPCASTERS
from projector.errors import IntegrityBreak
from projector.store import RowStore

Args = dict[str, Any]
Apply = Callable[[RowStore, Args], None]

#: The schema catalog (schemas/ai-desk) whose events these handlers project. Another
#: catalog's event is never theirs, even under the same name: every app with a client
#: document `uiState` has a `uiStateSet` event, with its own value and its own table.
CATALOG = "ai-desk"


def any_row(table: str) -> str:
    """The parked-entity name that holds back every row of TABLE."""
    return f"{table}:*"


@dataclass(frozen=True)
class Handler:
    """How one event name changes the tables."""

    name: str
    table: str
    key: str
    apply: Apply
    #: The rows (table, args field naming the key) the handler reads, fetched in bulk.
    reads: tuple[tuple[str, str], ...] = ()

    @property
    def any_row(self) -> str:
        """The entity that stands for every row of the handler's table."""
        return any_row(self.table)

    def entity(self, args: Any) -> str | None:
        """``table:key`` of the row the event touches, when the args name it."""
        if isinstance(args, dict):
            value = args.get(self.key)
            if isinstance(value, str):
                return f"{self.table}:{value}"
        return None


HANDLERS: dict[str, Handler] = {}


def handles(
    name: str,
    *,
    table: str,
    key: str = "id",
    reads: tuple[tuple[str, str], ...] | None = None,
) -> Callable[[Apply], Apply]:
    """Register the decorated function as the handler of event NAME.

    READS names the rows it looks at (default: its own row), so a batch can read them
    all at once; a row it reads without naming it is still read, one query at a time.
    """

    def register(fn: Apply) -> Apply:
        if name in HANDLERS:
            raise ValueError(f"a handler for {name} is already registered")
        HANDLERS[name] = Handler(name, table, key, fn, ((table, key),) if reads is None else reads)
        return fn

    return register


def handler_for(name: str) -> Handler | None:
    """The handler that applies NAME, following the upcast chain."""
    seen = set()
    while name not in HANDLERS and name in UPCASTERS and name not in seen:
        seen.add(name)
        name = UPCASTERS[name][0]
    return HANDLERS.get(name)


def _require_persona(store: RowStore, column: str, persona_id: str) -> None:
    """The reference check the handlers do themselves (see Projection)."""
    if store.get("personas", persona_id) is None:
        raise IntegrityBreak(f"{column}: persona {persona_id!r} does not exist")


# ---------------------------------------------------------------- personas


def _create(store: RowStore, table: str, noun: str, key: str, row: Args) -> None:
    """LiveStore's plain INSERT: a row whose key is taken is an integrity break."""
    if store.get(table, key) is not None:
        raise IntegrityBreak(f"{noun} {key!r} already exists")
    store.put(table, key, row)


@handles("v2.PersonaCreated", table="personas")
def persona_created(store: RowStore, a: Args) -> None:
    _create(
        store,
        "personas",
        "persona",
        a["id"],
        {
            "id": a["id"],
            "name": a["name"],
            "personality": a["personality"],
            "avatar": a["avatar"],
            "voice": a["voice"],
            "createdAt": a["createdAt"],
            "deletedAt": None,
        },
    )


_PERSONA_FIELDS = ("name", "personality", "avatar")


def _update(store: RowStore, table: str, key: str, changes: Args) -> None:
    """LiveStore's ``UPDATE ... WHERE key = ?``: nothing happens to a row that is not there."""
    row = store.get(table, key)
    if row is not None:
        store.put(table, key, {**row, **changes})


@handles("v1.PersonaUpdated", table="personas")
def persona_updated(store: RowStore, a: Args) -> None:
    changes = {f: a[f] for f in _PERSONA_FIELDS if f in a}
    if changes:
        _update(store, "personas", a["id"], changes)


@handles("v1.PersonaDeleted", table="personas")
def persona_deleted(store: RowStore, a: Args) -> None:
    _update(store, "personas", a["id"], {"deletedAt": a["deletedAt"]})


# ---------------------------------------------------------------- memories


@handles("v1.MemoryAdded", table="memories", reads=(("personas", "personaId"), ("memories", "id")))
def memory_added(store: RowStore, a: Args) -> None:
    _require_persona(store, "memories.personaId", a["personaId"])
    _create(
        store,
        "memories",
        "memory",
        a["id"],
        {
            "id": a["id"],
            "personaId": a["personaId"],
            "content": a["content"],
            "kind": a["kind"],
            "importance": a["importance"],
            "tags": js_json(a["tags"]),  # memory_tags follows (see RowStore)
            "createdAt": a["createdAt"],
            "updatedAt": a["createdAt"],
        },
    )


_MEMORY_FIELDS = ("content", "importance")


@handles("v1.MemoryUpdated", table="memories")
def memory_updated(store: RowStore, a: Args) -> None:
    changes = {f: a[f] for f in _MEMORY_FIELDS if f in a}
    if "tags" in a:
        changes["tags"] = js_json(a["tags"])
    changes["updatedAt"] = a["updatedAt"]
    _update(store, "memories", a["id"], changes)


@handles("v1.MemoryDeleted", table="memories")
def memory_deleted(store: RowStore, a: Args) -> None:
    if store.get("memories", a["id"]) is not None:
        store.delete("memories", a["id"])


# ---------------------------------------------------------------- plugins


@handles("v1.PluginInstalled", table="plugins", reads=())
def plugin_installed(store: RowStore, a: Args) -> None:
    # Re-installing an id is an upgrade: the row is replaced and `enabled` resets.
    store.put(
        "plugins",
        a["id"],
        {
            "id": a["id"],
            "name": a["name"],
            "version": a["version"],
            "manifest": js_json(a["manifest"]),
            "enabled": 0,
            "installedAt": iso_to_epoch_ms(a["installedAt"]),
        },
    )


@handles("v1.PluginEnabled", table="plugins")
def plugin_enabled(store: RowStore, a: Args) -> None:
    _update(store, "plugins", a["id"], {"enabled": 1})


@handles("v1.PluginDisabled", table="plugins")
def plugin_disabled(store: RowStore, a: Args) -> None:
    _update(store, "plugins", a["id"], {"enabled": 0})


@handles("v1.PluginUninstalled", table="plugins", reads=())
def plugin_uninstalled(store: RowStore, a: Args) -> None:
    store.delete("plugins", a["id"])


# ---------------------------------------------------------------- config and drafts


@handles("v1.ConfigSet", table="config", key="key", reads=())
def config_set(store: RowStore, a: Args) -> None:
    store.put("config", a["key"], {"key": a["key"], "value": js_json(a["value"])})


@handles("v1.DraftSaved", table="drafts", key="personaId", reads=(("personas", "personaId"),))
def draft_saved(store: RowStore, a: Args) -> None:
    _require_persona(store, "drafts.personaId", a["personaId"])
    store.put(
        "drafts",
        a["personaId"],
        {"personaId": a["personaId"], "text": a["text"], "savedAt": a["savedAt"]},
    )


# ---------------------------------------------------------------- client documents

USER_PREFERENCES_DEFAULT: Args = {
    "theme": "system",
    "language": "en",
    "fontSize": 14,
    "sendOnEnter": True,
    "activePersonaId": None,
    "notifications": {"enabled": True, "sound": "chime"},
}
UI_STATE_DEFAULT: Args = {
    "selectedPersonaId": None,
    "sidebarOpen": True,
    "searchQuery": "",
    "scrollTop": 0,
}


def _client_document_set(store: RowStore, table: str, default: Args, a: Args) -> None:
    """LiveStore's `${name}Set`: insert defaults merged with the value, or merge top-level keys.

    LiveStore runs ``INSERT ... ON CONFLICT (id) DO UPDATE SET value = json_set(value,
    '$.key', json(?), ...)`` (client-document-def.ts). The same merge is done here on the
    parsed document: a key already there keeps its place, a new key goes last and a nested
    object is replaced whole, so the stored text is byte-identical to json_set's
    (tests/test_handlers.py proves it against SQLite's json_set).
    """
    value: Args = a["value"]
    row = store.get(table, a["id"])
    if row is None:
        # mergeDefaultValues: `value[k] ?? default[k]`, so a null takes the default.
        inserted = {**default, **{k: v for k, v in value.items() if v is not None}}
        store.put(table, a["id"], {"id": a["id"], "value": js_json(inserted)})
    elif value:
        merged = json.loads(row["value"])
        merged.update(value)
        store.put(table, a["id"], {"id": a["id"], "value": js_json(merged)})


@handles("userPreferencesSet", table="userPreferences")
def user_preferences_set(store: RowStore, a: Args) -> None:
    _client_document_set(store, "userPreferences", USER_PREFERENCES_DEFAULT, a)


@handles("uiStateSet", table="uiState")
def ui_state_set(store: RowStore, a: Args) -> None:
    _client_document_set(store, "uiState", UI_STATE_DEFAULT, a)
