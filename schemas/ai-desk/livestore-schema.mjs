// The ai-desk app's own LiveStore 0.4.0 schema, as ../shared/livestore/gen/schema.mjs wrote the
// fixtures with it (copied verbatim below this note): `make oracle` rebuilds ai-desk logs with it.
// LiveStore 0.4.0 schema for a "personal AI desktop app" fixture.
// Plain ESM (no build step). Uses only the public @livestore/livestore API.
//
// Event-name convention follows the LiveStore docs ('v1.TodoCreated').
// Event args use Effect Schema; `Schema.Date` args are *encoded* before they hit
// the eventlog, so they appear as ISO-8601 strings in eventlog.argsJson.
import { Events, makeSchema, Schema, SessionIdSymbol, State } from '@livestore/livestore'

// ---------------------------------------------------------------- tables

export const MemoryKind = Schema.Literal('fact', 'preference', 'episode', 'instruction', 'relationship')

export const PluginManifest = Schema.Struct({
  name: Schema.String,
  version: Schema.String,
  description: Schema.String,
  author: Schema.Struct({ name: Schema.String, email: Schema.optional(Schema.String) }),
  entry: Schema.String,
  permissions: Schema.Array(Schema.String),
  minAppVersion: Schema.String,
  settings: Schema.Record({ key: Schema.String, value: Schema.JsonValue }),
})

export const tables = {
  personas: State.SQLite.table({
    name: 'personas',
    columns: {
      id: State.SQLite.text({ primaryKey: true }),
      name: State.SQLite.text({ default: '' }),
      personality: State.SQLite.text({ default: '' }),
      avatar: State.SQLite.text({ nullable: true }),
      // only filled by the evolved event v2.PersonaCreated
      voice: State.SQLite.text({ nullable: true }),
      // State.SQLite.datetime => TEXT column holding an ISO-8601 string
      createdAt: State.SQLite.datetime(),
      deletedAt: State.SQLite.datetime({ nullable: true }),
    },
  }),
  memories: State.SQLite.table({
    name: 'memories',
    columns: {
      id: State.SQLite.text({ primaryKey: true }),
      personaId: State.SQLite.text(),
      content: State.SQLite.text({ default: '' }),
      kind: State.SQLite.text({ schema: MemoryKind }),
      importance: State.SQLite.real({ default: 0.5 }),
      // json column => TEXT column holding JSON
      tags: State.SQLite.json({ schema: Schema.Array(Schema.String), default: [] }),
      createdAt: State.SQLite.datetime(),
      updatedAt: State.SQLite.datetime(),
    },
    indexes: [{ name: 'idx_memories_personaId', columns: ['personaId'] }],
  }),
  plugins: State.SQLite.table({
    name: 'plugins',
    columns: {
      id: State.SQLite.text({ primaryKey: true }),
      name: State.SQLite.text(),
      version: State.SQLite.text(),
      manifest: State.SQLite.json({ schema: PluginManifest }),
      // boolean => INTEGER 0/1
      enabled: State.SQLite.boolean({ default: false }),
      // INTEGER epoch milliseconds via Schema.DateFromNumber (contrast with personas.createdAt TEXT ISO)
      installedAt: State.SQLite.integer({ schema: Schema.DateFromNumber }),
    },
  }),
  config: State.SQLite.table({
    name: 'config',
    columns: {
      key: State.SQLite.text({ primaryKey: true }),
      value: State.SQLite.json({ schema: Schema.JsonValue }),
    },
  }),
  // Target of the user-defined client-only event v1.DraftSaved
  drafts: State.SQLite.table({
    name: 'drafts',
    columns: {
      personaId: State.SQLite.text({ primaryKey: true }),
      text: State.SQLite.text({ default: '' }),
      savedAt: State.SQLite.datetime(),
    },
  }),
  // Client documents: LiveStore auto-generates the client-only event `${name}Set`
  userPreferences: State.SQLite.clientDocument({
    name: 'userPreferences',
    schema: Schema.Struct({
      theme: Schema.Literal('system', 'light', 'dark'),
      language: Schema.String,
      fontSize: Schema.Number,
      sendOnEnter: Schema.Boolean,
      activePersonaId: Schema.NullOr(Schema.String),
      notifications: Schema.Struct({ enabled: Schema.Boolean, sound: Schema.String }),
    }),
    default: {
      id: 'default',
      value: {
        theme: 'system',
        language: 'en',
        fontSize: 14,
        sendOnEnter: true,
        activePersonaId: null,
        notifications: { enabled: true, sound: 'chime' },
      },
    },
  }),
  uiState: State.SQLite.clientDocument({
    name: 'uiState',
    schema: Schema.Struct({
      selectedPersonaId: Schema.NullOr(Schema.String),
      sidebarOpen: Schema.Boolean,
      searchQuery: Schema.String,
      scrollTop: Schema.Number,
    }),
    // SessionIdSymbol: the row id becomes the adapter's sessionId ('static' on Node)
    default: { id: SessionIdSymbol, value: { selectedPersonaId: null, sidebarOpen: true, searchQuery: '', scrollTop: 0 } },
  }),
}

// ---------------------------------------------------------------- events

export const events = {
  personaCreatedV1: Events.synced({
    name: 'v1.PersonaCreated',
    schema: Schema.Struct({
      id: Schema.String,
      name: Schema.String,
      personality: Schema.String,
      avatar: Schema.optional(Schema.String), // key omitted from argsJson when undefined
      createdAt: Schema.Date,
    }),
  }),
  // Evolved event: new name + extra field `voice`; avatar became NullOr (explicit null in argsJson)
  personaCreatedV2: Events.synced({
    name: 'v2.PersonaCreated',
    schema: Schema.Struct({
      id: Schema.String,
      name: Schema.String,
      personality: Schema.String,
      avatar: Schema.NullOr(Schema.String),
      voice: Schema.String,
      createdAt: Schema.Date,
    }),
  }),
  personaUpdated: Events.synced({
    name: 'v1.PersonaUpdated',
    schema: Schema.Struct({
      id: Schema.String,
      name: Schema.optional(Schema.String),
      personality: Schema.optional(Schema.String),
      avatar: Schema.optional(Schema.NullOr(Schema.String)),
    }),
  }),
  personaDeleted: Events.synced({
    name: 'v1.PersonaDeleted',
    schema: Schema.Struct({ id: Schema.String, deletedAt: Schema.Date }),
  }),
  memoryAdded: Events.synced({
    name: 'v1.MemoryAdded',
    schema: Schema.Struct({
      id: Schema.String,
      personaId: Schema.String,
      content: Schema.String,
      kind: MemoryKind,
      importance: Schema.Number,
      tags: Schema.Array(Schema.String),
      createdAt: Schema.Date,
    }),
  }),
  memoryUpdated: Events.synced({
    name: 'v1.MemoryUpdated',
    schema: Schema.Struct({
      id: Schema.String,
      content: Schema.optional(Schema.String),
      importance: Schema.optional(Schema.Number),
      tags: Schema.optional(Schema.Array(Schema.String)),
      updatedAt: Schema.Date,
    }),
  }),
  memoryDeleted: Events.synced({
    name: 'v1.MemoryDeleted',
    schema: Schema.Struct({ id: Schema.String }),
  }),
  pluginInstalled: Events.synced({
    name: 'v1.PluginInstalled',
    schema: Schema.Struct({
      id: Schema.String,
      name: Schema.String,
      version: Schema.String,
      manifest: PluginManifest,
      installedAt: Schema.Date,
    }),
  }),
  pluginEnabled: Events.synced({ name: 'v1.PluginEnabled', schema: Schema.Struct({ id: Schema.String }) }),
  pluginDisabled: Events.synced({ name: 'v1.PluginDisabled', schema: Schema.Struct({ id: Schema.String }) }),
  pluginUninstalled: Events.synced({ name: 'v1.PluginUninstalled', schema: Schema.Struct({ id: Schema.String }) }),
  configSet: Events.synced({
    name: 'v1.ConfigSet',
    schema: Schema.Struct({ key: Schema.String, value: Schema.JsonValue }),
  }),
  // User-defined client-only (local, never synced) event
  draftSaved: Events.clientOnly({
    name: 'v1.DraftSaved',
    schema: Schema.Struct({ personaId: Schema.String, text: Schema.String, savedAt: Schema.Date }),
  }),
  // Auto-generated client-document set events ('userPreferencesSet', 'uiStateSet')
  userPreferencesSet: tables.userPreferences.set,
  uiStateSet: tables.uiState.set,
}

// ---------------------------------------------------------------- materializers

const pick = (obj, keys) => {
  const out = {}
  for (const k of keys) if (obj[k] !== undefined) out[k] = obj[k]
  return out
}

const materializers = State.SQLite.materializers(events, {
  'v1.PersonaCreated': ({ id, name, personality, avatar, createdAt }) =>
    tables.personas.insert({ id, name, personality, avatar: avatar ?? null, voice: null, createdAt, deletedAt: null }),
  'v2.PersonaCreated': ({ id, name, personality, avatar, voice, createdAt }) =>
    tables.personas.insert({ id, name, personality, avatar, voice, createdAt, deletedAt: null }),
  'v1.PersonaUpdated': (args) =>
    tables.personas.update(pick(args, ['name', 'personality', 'avatar'])).where({ id: args.id }),
  // soft delete
  'v1.PersonaDeleted': ({ id, deletedAt }) => tables.personas.update({ deletedAt }).where({ id }),
  'v1.MemoryAdded': ({ id, personaId, content, kind, importance, tags, createdAt }) =>
    tables.memories.insert({ id, personaId, content, kind, importance, tags, createdAt, updatedAt: createdAt }),
  'v1.MemoryUpdated': (args) =>
    tables.memories
      .update({ ...pick(args, ['content', 'importance', 'tags']), updatedAt: args.updatedAt })
      .where({ id: args.id }),
  // hard delete
  'v1.MemoryDeleted': ({ id }) => tables.memories.delete().where({ id }),
  // re-installing an installed plugin id = upgrade => row replaced, enabled resets to false
  'v1.PluginInstalled': ({ id, name, version, manifest, installedAt }) =>
    tables.plugins.insert({ id, name, version, manifest, enabled: false, installedAt }).onConflict('id', 'replace'),
  'v1.PluginEnabled': ({ id }) => tables.plugins.update({ enabled: true }).where({ id }),
  'v1.PluginDisabled': ({ id }) => tables.plugins.update({ enabled: false }).where({ id }),
  'v1.PluginUninstalled': ({ id }) => tables.plugins.delete().where({ id }),
  'v1.ConfigSet': ({ key, value }) => tables.config.insert({ key, value }).onConflict('key', 'replace'),
  'v1.DraftSaved': ({ personaId, text, savedAt }) =>
    tables.drafts.insert({ personaId, text, savedAt }).onConflict('personaId', 'replace'),
})

const state = State.SQLite.makeState({ tables, materializers })

export const schema = makeSchema({ events, state })
