-- ai-desk 0001: the app's tables, with LiveStore's table names, column names and
-- encodings (see catalog.toml), plus what a relational app needs: primary keys, NOT NULL,
-- CHECKs, foreign keys, indexes, and memory_tags (one row per tag of memories.tags).
-- The statements keep the indentation of targets made before catalogs existed, so that
-- the schema text SQLite stores is the same byte for byte.

CREATE TABLE personas (
            id TEXT PRIMARY KEY NOT NULL,
            name TEXT NOT NULL DEFAULT '',
            personality TEXT NOT NULL DEFAULT '',
            avatar TEXT,
            voice TEXT,
            createdAt TEXT NOT NULL,
            deletedAt TEXT
        ) STRICT;

CREATE TABLE memories (
            id TEXT PRIMARY KEY NOT NULL,
            personaId TEXT NOT NULL REFERENCES personas(id),
            content TEXT NOT NULL DEFAULT '',
            kind TEXT NOT NULL
                CHECK (kind IN ('fact', 'preference', 'episode', 'instruction', 'relationship')),
            importance REAL NOT NULL DEFAULT 0.5,
            tags TEXT NOT NULL DEFAULT '[]' CHECK (json_type(tags) = 'array'),
            createdAt TEXT NOT NULL,
            updatedAt TEXT NOT NULL
        ) STRICT;

CREATE INDEX idx_memories_personaId ON memories (personaId);

CREATE TABLE memory_tags (
            memoryId TEXT NOT NULL REFERENCES memories(id) ON DELETE CASCADE,
            tag TEXT NOT NULL,
            PRIMARY KEY (memoryId, tag)
        ) STRICT, WITHOUT ROWID;

CREATE INDEX idx_memory_tags_tag ON memory_tags (tag, memoryId);

CREATE TABLE plugins (
            id TEXT PRIMARY KEY NOT NULL,
            name TEXT NOT NULL,
            version TEXT NOT NULL,
            manifest TEXT NOT NULL CHECK (json_type(manifest) = 'object'),
            enabled INTEGER NOT NULL DEFAULT 0 CHECK (enabled IN (0, 1)),
            installedAt INTEGER NOT NULL
        ) STRICT;

CREATE TABLE config (
            key TEXT PRIMARY KEY NOT NULL,
            value TEXT NOT NULL CHECK (json_valid(value))
        ) STRICT;

CREATE TABLE drafts (
            personaId TEXT PRIMARY KEY NOT NULL REFERENCES personas(id),
            text TEXT NOT NULL DEFAULT '',
            savedAt TEXT NOT NULL
        ) STRICT;

CREATE TABLE userPreferences (
            id TEXT PRIMARY KEY NOT NULL,
            value TEXT NOT NULL CHECK (json_type(value) = 'object')
        ) STRICT;

CREATE TABLE uiState (
            id TEXT PRIMARY KEY NOT NULL,
            value TEXT NOT NULL CHECK (json_type(value) = 'object')
        ) STRICT;
