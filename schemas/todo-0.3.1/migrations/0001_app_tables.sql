-- todo-0.3.1 0001: LiveStore's tables of the app, with primary keys and NOT NULL.

CREATE TABLE todos (
    id TEXT PRIMARY KEY NOT NULL,
    text TEXT NOT NULL,
    createdAt TEXT NOT NULL
) STRICT;

CREATE TABLE uiState (
    id TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL CHECK (json_type(value) = 'object')
) STRICT;
