// LiveStore 0.4.0 schema of a reading-list (bookmarks) app: the third app of the projector's tests, written to
// check that docs/catalogs.md is enough to write a catalog for an app the projector has never seen.
// Plain ESM (no build step); only the public @livestore/livestore API.
//
// What this app does that ai-desk and todomvc do not (or do differently):
// - `bookmarks.savedAt` is `integer` + `Schema.DateFromNumber` filled from a `Schema.Date` arg (ISO in argsJson),
//   while `readingPositions.updatedAt` is filled from a `Schema.DateFromNumber` arg (epoch ms already in argsJson);
// - `bookmarks.tags` is a json column (array of strings) set on insert, upsert and partial update;
// - `v1.BookmarkImported` is an upsert (`.onConflict('id', 'replace')`) whose args are nested (`source.url`);
// - `v1.CollectionCreated` is an upsert that changes only `name` on a taken id (`.onConflict('id', 'update', ...)`);
// - `v1.BookmarkEdited` is a partial update of optional fields, some of them `NullOr` (an explicit null clears);
// - `v1.BookmarkFavorited` stores a boolean taken from the args (not a constant);
// - `v1.BookmarkRead` writes two tables (updates `bookmarks.readAt`, inserts a `readingLog` row);
// - `v1.BookmarkDeleted` is a hard delete that also bulk-deletes the bookmark's `readingLog` rows (a condition
//   taken from the args), `v1.ArchivedCleared` a bulk delete by a constant condition (every archived bookmark);
// - `v1.CollectionDeleted` bulk-updates `bookmarks.collectionId` to NULL where it was the collection, then deletes it;
// - client document `readerSettings` (constant id 'default') with a nested object (`layout`) in its default;
// - user-defined client-only event `v1.ReadingPositionSaved` (an upsert into `readingPositions`).
import { Events, makeSchema, Schema, State } from '@livestore/livestore'

export const Theme = Schema.Literal('light', 'dark', 'sepia')

// ---------------------------------------------------------------- tables

export const tables = {
  bookmarks: State.SQLite.table({
    name: 'bookmarks',
    columns: {
      id: State.SQLite.text({ primaryKey: true }),
      url: State.SQLite.text(),
      title: State.SQLite.text({ default: '' }),
      note: State.SQLite.text({ nullable: true }),
      // json column => TEXT holding JSON.stringify of the array
      tags: State.SQLite.json({ schema: Schema.Array(Schema.String), default: [] }),
      // INTEGER epoch milliseconds (the args carry an ISO string: Schema.Date)
      savedAt: State.SQLite.integer({ schema: Schema.DateFromNumber }),
      // TEXT ISO-8601
      readAt: State.SQLite.datetime({ nullable: true }),
      archived: State.SQLite.boolean({ default: false }),
      favorite: State.SQLite.boolean({ default: false }),
      rating: State.SQLite.real({ nullable: true }),
      collectionId: State.SQLite.text({ nullable: true }),
    },
    indexes: [{ name: 'idx_bookmarks_collectionId', columns: ['collectionId'] }],
  }),
  collections: State.SQLite.table({
    name: 'collections',
    columns: {
      id: State.SQLite.text({ primaryKey: true }),
      name: State.SQLite.text(),
      color: State.SQLite.text({ default: '#888888' }),
      createdAt: State.SQLite.datetime(),
    },
  }),
  // one row per reading session; written together with bookmarks.readAt by v1.BookmarkRead
  readingLog: State.SQLite.table({
    name: 'readingLog',
    columns: {
      id: State.SQLite.text({ primaryKey: true }),
      bookmarkId: State.SQLite.text(),
      readAt: State.SQLite.datetime(),
      minutes: State.SQLite.integer({ default: 0 }),
    },
    indexes: [{ name: 'idx_readingLog_bookmarkId', columns: ['bookmarkId'] }],
  }),
  // target of the user-defined client-only event v1.ReadingPositionSaved
  readingPositions: State.SQLite.table({
    name: 'readingPositions',
    columns: {
      bookmarkId: State.SQLite.text({ primaryKey: true }),
      progress: State.SQLite.real({ default: 0 }),
      // INTEGER epoch ms; the event's arg is Schema.DateFromNumber, so argsJson holds the number already
      updatedAt: State.SQLite.integer({ schema: Schema.DateFromNumber }),
    },
  }),
  // client document with a nested object in its default; a set of `layout` replaces it whole
  readerSettings: State.SQLite.clientDocument({
    name: 'readerSettings',
    schema: Schema.Struct({
      theme: Theme,
      fontSize: Schema.Number,
      layout: Schema.Struct({ columns: Schema.Number, justify: Schema.Boolean }),
      lastOpenedId: Schema.NullOr(Schema.String),
    }),
    default: { id: 'default', value: { theme: 'light', fontSize: 16, layout: { columns: 1, justify: false }, lastOpenedId: null } },
  }),
}

// ---------------------------------------------------------------- events

export const events = {
  bookmarkSaved: Events.synced({
    name: 'v1.BookmarkSaved',
    schema: Schema.Struct({
      id: Schema.String,
      url: Schema.String,
      title: Schema.String,
      tags: Schema.Array(Schema.String),
      savedAt: Schema.Date,
      collectionId: Schema.optional(Schema.String), // key omitted when undefined => column default (NULL)
    }),
  }),
  // import from another browser: the whole row is replaced if the id exists (archived/favorite/readAt reset)
  bookmarkImported: Events.synced({
    name: 'v1.BookmarkImported',
    schema: Schema.Struct({
      id: Schema.String,
      source: Schema.Struct({ url: Schema.String, title: Schema.String, browser: Schema.Literal('firefox', 'chrome', 'safari') }),
      tags: Schema.Array(Schema.String),
      savedAt: Schema.Date,
      archived: Schema.Boolean,
    }),
  }),
  bookmarkEdited: Events.synced({
    name: 'v1.BookmarkEdited',
    schema: Schema.Struct({
      id: Schema.String,
      title: Schema.optional(Schema.String),
      note: Schema.optional(Schema.NullOr(Schema.String)),
      tags: Schema.optional(Schema.Array(Schema.String)),
      rating: Schema.optional(Schema.NullOr(Schema.Number)),
    }),
  }),
  bookmarkRead: Events.synced({
    name: 'v1.BookmarkRead',
    schema: Schema.Struct({ id: Schema.String, logId: Schema.String, readAt: Schema.Date, minutes: Schema.Int }),
  }),
  bookmarkArchived: Events.synced({ name: 'v1.BookmarkArchived', schema: Schema.Struct({ id: Schema.String }) }),
  bookmarkUnarchived: Events.synced({ name: 'v1.BookmarkUnarchived', schema: Schema.Struct({ id: Schema.String }) }),
  bookmarkFavorited: Events.synced({
    name: 'v1.BookmarkFavorited',
    schema: Schema.Struct({ id: Schema.String, favorite: Schema.Boolean }),
  }),
  bookmarkMoved: Events.synced({
    name: 'v1.BookmarkMoved',
    schema: Schema.Struct({ id: Schema.String, collectionId: Schema.NullOr(Schema.String) }),
  }),
  // hard delete (and the bookmark's reading log with it)
  bookmarkDeleted: Events.synced({ name: 'v1.BookmarkDeleted', schema: Schema.Struct({ id: Schema.String }) }),
  // "Empty archive": ONE event, no ids; hard-deletes every archived bookmark (their reading log stays)
  archivedCleared: Events.synced({ name: 'v1.ArchivedCleared', schema: Schema.Struct({}) }),
  collectionCreated: Events.synced({
    name: 'v1.CollectionCreated',
    schema: Schema.Struct({
      id: Schema.String,
      name: Schema.String,
      color: Schema.optional(Schema.String),
      createdAt: Schema.Date,
    }),
  }),
  collectionDeleted: Events.synced({ name: 'v1.CollectionDeleted', schema: Schema.Struct({ id: Schema.String }) }),
  // user-defined client-only event; `at` is Schema.DateFromNumber, so argsJson holds epoch ms
  readingPositionSaved: Events.clientOnly({
    name: 'v1.ReadingPositionSaved',
    schema: Schema.Struct({ bookmarkId: Schema.String, progress: Schema.Number, at: Schema.DateFromNumber }),
  }),
  // auto-generated client-only event of the client document
  readerSettingsSet: tables.readerSettings.set,
}

// ---------------------------------------------------------------- materializers

const pick = (obj, keys) => {
  const out = {}
  for (const k of keys) if (obj[k] !== undefined) out[k] = obj[k]
  return out
}

const materializers = State.SQLite.materializers(events, {
  'v1.BookmarkSaved': ({ id, url, title, tags, savedAt, collectionId }) =>
    tables.bookmarks.insert({ id, url, title, tags, savedAt, collectionId }),
  'v1.BookmarkImported': ({ id, source, tags, savedAt, archived }) =>
    tables.bookmarks.insert({ id, url: source.url, title: source.title, tags, savedAt, archived }).onConflict('id', 'replace'),
  'v1.BookmarkEdited': (args) =>
    tables.bookmarks.update(pick(args, ['title', 'note', 'tags', 'rating'])).where({ id: args.id }),
  'v1.BookmarkRead': ({ id, logId, readAt, minutes }) => [
    tables.bookmarks.update({ readAt }).where({ id }),
    tables.readingLog.insert({ id: logId, bookmarkId: id, readAt, minutes }),
  ],
  'v1.BookmarkArchived': ({ id }) => tables.bookmarks.update({ archived: true }).where({ id }),
  'v1.BookmarkUnarchived': ({ id }) => tables.bookmarks.update({ archived: false }).where({ id }),
  'v1.BookmarkFavorited': ({ id, favorite }) => tables.bookmarks.update({ favorite }).where({ id }),
  'v1.BookmarkMoved': ({ id, collectionId }) => tables.bookmarks.update({ collectionId }).where({ id }),
  'v1.BookmarkDeleted': ({ id }) => [
    tables.readingLog.delete().where({ bookmarkId: id }),
    tables.bookmarks.delete().where({ id }),
  ],
  'v1.ArchivedCleared': () => tables.bookmarks.delete().where({ archived: true }),
  'v1.CollectionCreated': ({ id, name, color, createdAt }) =>
    tables.collections.insert({ id, name, color, createdAt }).onConflict('id', 'update', { name }),
  'v1.CollectionDeleted': ({ id }) => [
    tables.bookmarks.update({ collectionId: null }).where({ collectionId: id }),
    tables.collections.delete().where({ id }),
  ],
  'v1.ReadingPositionSaved': ({ bookmarkId, progress, at }) =>
    tables.readingPositions.insert({ bookmarkId, progress, updatedAt: at }).onConflict('bookmarkId', 'replace'),
})

const state = State.SQLite.makeState({ tables, materializers })

export const schema = makeSchema({ events, state })
