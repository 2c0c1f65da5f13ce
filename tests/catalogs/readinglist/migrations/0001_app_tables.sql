-- The reading-list app's tables. They mirror LiveStore's state tables (same names, encodings and
-- defaults: epoch-ms savedAt/updatedAt, ISO text readAt/createdAt, 0/1 booleans, JSON text tags),
-- except that bookmarks.url is called href here; catalog.toml says so for verify.
-- Added for a relational app: NOT NULL, CHECKs, a foreign key from bookmarks to collections
-- (LiveStore's CollectionDeleted clears collectionId before deleting), indexes.
-- readingLog has no foreign key: LiveStore's ArchivedCleared keeps the log of the bookmarks it deletes.

CREATE TABLE collections (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    color TEXT NOT NULL DEFAULT '#888888',
    createdAt TEXT NOT NULL
) STRICT;

CREATE TABLE bookmarks (
    id TEXT PRIMARY KEY NOT NULL,
    href TEXT NOT NULL,
    title TEXT NOT NULL DEFAULT '',
    note TEXT,
    tags TEXT NOT NULL DEFAULT '[]' CHECK (json_type(tags) = 'array'),
    savedAt INTEGER NOT NULL,
    readAt TEXT,
    archived INTEGER NOT NULL DEFAULT 0 CHECK (archived IN (0, 1)),
    favorite INTEGER NOT NULL DEFAULT 0 CHECK (favorite IN (0, 1)),
    rating REAL,
    collectionId TEXT REFERENCES collections (id)
) STRICT;

CREATE INDEX idx_bookmarks_collectionId ON bookmarks (collectionId);
CREATE INDEX idx_bookmarks_archived ON bookmarks (archived);

-- one row per distinct tag of a bookmark, kept in step with bookmarks.tags by the projector
CREATE TABLE bookmark_tags (
    bookmarkId TEXT NOT NULL REFERENCES bookmarks (id),
    tag TEXT NOT NULL,
    PRIMARY KEY (bookmarkId, tag)
) STRICT;

CREATE INDEX idx_bookmark_tags_tag ON bookmark_tags (tag, bookmarkId);

CREATE TABLE readingLog (
    id TEXT PRIMARY KEY NOT NULL,
    bookmarkId TEXT NOT NULL,
    readAt TEXT NOT NULL,
    minutes INTEGER NOT NULL DEFAULT 0 CHECK (minutes >= 0)
) STRICT;

CREATE INDEX idx_readingLog_bookmarkId ON readingLog (bookmarkId);

CREATE TABLE readingPositions (
    bookmarkId TEXT PRIMARY KEY NOT NULL,
    progress REAL NOT NULL DEFAULT 0 CHECK (progress BETWEEN 0 AND 1),
    updatedAt INTEGER NOT NULL
) STRICT;

CREATE TABLE readerSettings (
    id TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL CHECK (json_type(value) = 'object')
) STRICT;
