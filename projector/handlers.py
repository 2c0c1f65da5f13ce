"""Projection handlers: one per current event name, with LiveStore's materializer semantics.

Each handler is registered by decorator with the table it writes and the args field that
names the row (the entity); registering a name twice is an error. Old event versions
reach these handlers through `events.upcast`. Handlers write with prepared, parameterized
statements on the batch's connection. They check references before their first write
(a persona before a memory or a draft), and only that first write can fail, so an event
whose rows would break integrity leaves nothing behind (see `IntegrityBreak`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from events.encoding import iso_to_epoch_ms, js_json
from events.upcast import UPCASTERS
from projector.errors import IntegrityBreak

Args = dict[str, Any]
Apply = Callable[[sqlite3.Connection, Args], None]


@dataclass(frozen=True)
class Handler:
    """How one event name changes the tables."""

    name: str
    table: str
    key: str
    apply: Apply

    @property
    def any_row(self) -> str:
        """The entity that stands for every row of the handler's table."""
        return f"{self.table}:*"

    def entity(self, args: Any) -> str | None:
        """``table:key`` of the row the event touches, when the args name it."""
        if isinstance(args, dict):
            value = args.get(self.key)
            if isinstance(value, str):
                return f"{self.table}:{value}"
        return None


HANDLERS: dict[str, Handler] = {}


def handles(name: str, *, table: str, key: str = "id") -> Callable[[Apply], Apply]:
    """Register the decorated function as the handler of event NAME."""

    def register(fn: Apply) -> Apply:
        if name in HANDLERS:
            raise ValueError(f"a handler for {name} is already registered")
        HANDLERS[name] = Handler(name, table, key, fn)
        return fn

    return register


def handler_for(name: str) -> Handler | None:
    """The handler that applies NAME, following the upcast chain."""
    seen = set()
    while name not in HANDLERS and name in UPCASTERS and name not in seen:
        seen.add(name)
        name = UPCASTERS[name][0]
    return HANDLERS.get(name)


def _require_persona(conn: sqlite3.Connection, column: str, persona_id: str) -> None:
    """The reference check the replay connection does itself (see Projection)."""
    if conn.execute("SELECT 1 FROM personas WHERE id = ?", (persona_id,)).fetchone() is None:
        raise IntegrityBreak(f"{column}: persona {persona_id!r} does not exist")


def _insert_tags(conn: sqlite3.Connection, memory_id: str, tags: list[str]) -> None:
    conn.executemany(
        "INSERT OR IGNORE INTO memory_tags (memoryId, tag) VALUES (?, ?)",
        [(memory_id, tag) for tag in tags],
    )


def _replace_tags(conn: sqlite3.Connection, memory_id: str, tags: list[str]) -> None:
    conn.execute("DELETE FROM memory_tags WHERE memoryId = ?", (memory_id,))
    _insert_tags(conn, memory_id, tags)


# ---------------------------------------------------------------- personas


@handles("v2.PersonaCreated", table="personas")
def persona_created(conn: sqlite3.Connection, a: Args) -> None:
    try:
        conn.execute(
            "INSERT INTO personas (id, name, personality, avatar, voice, createdAt, deletedAt) "
            "VALUES (?, ?, ?, ?, ?, ?, NULL)",
            (a["id"], a["name"], a["personality"], a["avatar"], a["voice"], a["createdAt"]),
        )
    except sqlite3.IntegrityError as exc:
        raise IntegrityBreak(f"persona {a['id']!r} already exists ({exc})") from None


_PERSONA_FIELDS = ("name", "personality", "avatar")


@handles("v1.PersonaUpdated", table="personas")
def persona_updated(conn: sqlite3.Connection, a: Args) -> None:
    present = [f for f in _PERSONA_FIELDS if f in a]
    if not present:
        return
    sets = ", ".join(f"{f} = ?" for f in present)
    conn.execute(f"UPDATE personas SET {sets} WHERE id = ?", [*(a[f] for f in present), a["id"]])


@handles("v1.PersonaDeleted", table="personas")
def persona_deleted(conn: sqlite3.Connection, a: Args) -> None:
    conn.execute("UPDATE personas SET deletedAt = ? WHERE id = ?", (a["deletedAt"], a["id"]))


# ---------------------------------------------------------------- memories


@handles("v1.MemoryAdded", table="memories")
def memory_added(conn: sqlite3.Connection, a: Args) -> None:
    tags = a["tags"]
    _require_persona(conn, "memories.personaId", a["personaId"])
    try:
        conn.execute(
            "INSERT INTO memories "
            "(id, personaId, content, kind, importance, tags, createdAt, updatedAt) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                a["id"],
                a["personaId"],
                a["content"],
                a["kind"],
                a["importance"],
                js_json(tags),
                a["createdAt"],
                a["createdAt"],
            ),
        )
    except sqlite3.IntegrityError as exc:
        raise IntegrityBreak(f"memory {a['id']!r} already exists ({exc})") from None
    if tags:
        # The memory row is new, so no tag row can name it yet (memory_tags.memoryId is a
        # foreign key): nothing to delete first.
        _insert_tags(conn, a["id"], tags)


_MEMORY_FIELDS = ("content", "importance")


@handles("v1.MemoryUpdated", table="memories")
def memory_updated(conn: sqlite3.Connection, a: Args) -> None:
    present = [f for f in _MEMORY_FIELDS if f in a]
    values = [a[f] for f in present]
    if "tags" in a:
        present.append("tags")
        values.append(js_json(a["tags"]))
    present.append("updatedAt")
    values.append(a["updatedAt"])
    sets = ", ".join(f"{f} = ?" for f in present)
    cursor = conn.execute(f"UPDATE memories SET {sets} WHERE id = ?", [*values, a["id"]])
    if "tags" in a and cursor.rowcount:
        _replace_tags(conn, a["id"], a["tags"])


@handles("v1.MemoryDeleted", table="memories")
def memory_deleted(conn: sqlite3.Connection, a: Args) -> None:
    conn.execute("DELETE FROM memory_tags WHERE memoryId = ?", (a["id"],))
    conn.execute("DELETE FROM memories WHERE id = ?", (a["id"],))


# ---------------------------------------------------------------- plugins


@handles("v1.PluginInstalled", table="plugins")
def plugin_installed(conn: sqlite3.Connection, a: Args) -> None:
    # Re-installing an id is an upgrade: the row is replaced and `enabled` resets.
    conn.execute(
        "INSERT OR REPLACE INTO plugins (id, name, version, manifest, enabled, installedAt) "
        "VALUES (?, ?, ?, ?, 0, ?)",
        (
            a["id"],
            a["name"],
            a["version"],
            js_json(a["manifest"]),
            iso_to_epoch_ms(a["installedAt"]),
        ),
    )


@handles("v1.PluginEnabled", table="plugins")
def plugin_enabled(conn: sqlite3.Connection, a: Args) -> None:
    conn.execute("UPDATE plugins SET enabled = 1 WHERE id = ?", (a["id"],))


@handles("v1.PluginDisabled", table="plugins")
def plugin_disabled(conn: sqlite3.Connection, a: Args) -> None:
    conn.execute("UPDATE plugins SET enabled = 0 WHERE id = ?", (a["id"],))


@handles("v1.PluginUninstalled", table="plugins")
def plugin_uninstalled(conn: sqlite3.Connection, a: Args) -> None:
    conn.execute("DELETE FROM plugins WHERE id = ?", (a["id"],))


# ---------------------------------------------------------------- config and drafts


@handles("v1.ConfigSet", table="config", key="key")
def config_set(conn: sqlite3.Connection, a: Args) -> None:
    conn.execute(
        "INSERT OR REPLACE INTO config (key, value) VALUES (?, ?)", (a["key"], js_json(a["value"]))
    )


@handles("v1.DraftSaved", table="drafts", key="personaId")
def draft_saved(conn: sqlite3.Connection, a: Args) -> None:
    _require_persona(conn, "drafts.personaId", a["personaId"])
    conn.execute(
        "INSERT OR REPLACE INTO drafts (personaId, text, savedAt) VALUES (?, ?, ?)",
        (a["personaId"], a["text"], a["savedAt"]),
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


def _client_document_set(conn: sqlite3.Connection, table: str, default: Args, a: Args) -> None:
    """LiveStore's `${name}Set`: insert defaults merged with the value, or merge top-level keys.

    This is the SQL LiveStore runs (client-document-def.ts): `json_set` per changed key,
    so a nested object is replaced whole and the stored JSON text is byte-identical.
    """
    value: Args = a["value"]
    insert = f'INSERT INTO "{table}" (id, value) VALUES (?, ?) ON CONFLICT (id) DO '
    initial = js_json({**default, **value})
    if not value:
        conn.execute(insert + "NOTHING", (a["id"], initial))
        return
    expr = "value"
    params: list[Any] = [a["id"], initial]
    for key, item in value.items():
        expr = f"json_set({expr}, ?, json(?))"
        params.extend((f"$.{key}", js_json(item)))
    conn.execute(insert + f"UPDATE SET value = {expr}", params)


@handles("userPreferencesSet", table="userPreferences")
def user_preferences_set(conn: sqlite3.Connection, a: Args) -> None:
    _client_document_set(conn, "userPreferences", USER_PREFERENCES_DEFAULT, a)


@handles("uiStateSet", table="uiState")
def ui_state_set(conn: sqlite3.Connection, a: Args) -> None:
    _client_document_set(conn, "uiState", UI_STATE_DEFAULT, a)
