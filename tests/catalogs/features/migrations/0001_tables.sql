-- features 0001: a table of each kind the engine knows.
CREATE TABLE owners (id TEXT PRIMARY KEY NOT NULL, name TEXT NOT NULL) STRICT;

CREATE TABLE items (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL DEFAULT '',  -- a comment; with a semicolon
    qty INTEGER NOT NULL DEFAULT 0,
    done INTEGER NOT NULL DEFAULT 0 CHECK (done IN (0, 1)),
    archived INTEGER NOT NULL DEFAULT 0,
    due INTEGER,
    meta TEXT,
    labels TEXT NOT NULL DEFAULT '[]',
    ownerId TEXT REFERENCES owners(id)
) STRICT;

CREATE TABLE item_labels (
    itemId TEXT NOT NULL REFERENCES items(id) ON DELETE CASCADE,
    label TEXT NOT NULL,
    PRIMARY KEY (itemId, label)
) STRICT, WITHOUT ROWID;

CREATE TABLE audit (id TEXT PRIMARY KEY NOT NULL, itemId TEXT NOT NULL, note TEXT) STRICT;

CREATE TABLE prefs (id TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL) STRICT;
