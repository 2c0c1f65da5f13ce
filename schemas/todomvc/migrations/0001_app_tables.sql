-- todomvc 0001: LiveStore's tables of the app (same names, columns and encodings), with
-- NOT NULL, CHECKs for the boolean and the JSON document, and an index for the bulk
-- "clear completed" (WHERE completed = 1).

CREATE TABLE todos (
    id TEXT PRIMARY KEY NOT NULL,
    text TEXT NOT NULL DEFAULT '',
    completed INTEGER NOT NULL DEFAULT 0 CHECK (completed IN (0, 1)),
    deletedAt INTEGER
) STRICT;

CREATE INDEX idx_todos_completed ON todos (completed);

CREATE TABLE uiState (
    id TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL CHECK (json_type(value) = 'object')
) STRICT;
