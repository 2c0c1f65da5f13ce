// The new app's side of the hand-off: what the ai-desk app, rewritten on better-sqlite3 +
// Drizzle ORM, does with the database `projector finalize` wrote. tests/test_consumer.py
// copies this file beside the schema.ts and relations.ts that `projector drizzle` wrote,
// type-checks and compiles them together with tsc (a type error fails the test: the
// generated types are part of what is checked), then runs:
//   node dist/app.js read  APP_DB               read-only, from a read-only folder
//   node dist/app.js write APP_DB MIGRATIONS [LATER_MIGRATIONS]   on a writable copy
// Each prints a JSON report on stdout; a failed check throws (exit 1).
import * as fs from 'node:fs';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import { asc, eq, isNull, sql } from 'drizzle-orm';
import { drizzle } from 'drizzle-orm/better-sqlite3';
import { migrate } from 'drizzle-orm/better-sqlite3/migrator';
import * as relations from './relations';
import * as schema from './schema';
import {
  activePersonas,
  config,
  memories,
  memoryTags,
  personaMemories,
  personas,
  plugins,
  userPreferences,
} from './schema';

function check(ok: boolean, what: string): void {
  if (!ok) throw new Error(`check failed: ${what}`);
}

function open(file: string, readonly: boolean) {
  const sqlite = new Database(file, { readonly, fileMustExist: true });
  if (!readonly) sqlite.pragma('foreign_keys = ON'); // the app's duty (README)
  return { sqlite, db: drizzle(sqlite, { schema: { ...schema, ...relations } }) };
}

function read(file: string) {
  const folder = path.dirname(file);
  const before = fs.readdirSync(folder).sort();
  const { sqlite, db } = open(file, true);
  const pragma = (name: string) => sqlite.pragma(name, { simple: true });
  const report: Record<string, unknown> = {
    journalMode: pragma('journal_mode'),
    userVersion: pragma('user_version'),
    applicationId: pragma('application_id'),
    integrityCheck: pragma('integrity_check'),
    foreignKeyProblems: (sqlite.pragma('foreign_key_check') as unknown[]).length,
  };

  // Booleans as booleans, installedAt as a Date, the manifest parsed and typed.
  const plugin = db.select().from(plugins).orderBy(asc(plugins.id)).limit(1).get();
  check(plugin !== undefined, 'a plugin');
  const enabled: boolean = plugin!.enabled;
  const installedAt: Date = plugin!.installedAt;
  const permissions: string[] = plugin!.manifest.permissions;
  check(typeof enabled === 'boolean', 'plugins.enabled is a boolean');
  check(installedAt instanceof Date && !Number.isNaN(installedAt.getTime()), 'installedAt is a Date');
  check(Array.isArray(permissions), 'manifest.permissions is an array');
  report.plugin = {
    id: plugin!.id,
    enabled,
    installedAt: installedAt.toISOString(),
    manifestAuthor: plugin!.manifest.author.name,
    permissions,
  };

  // JSON arrays parsed; the tag index answers "memories tagged X".
  const memory = db
    .select()
    .from(memories)
    .where(sql`json_array_length(${memories.tags}) > 0`)
    .orderBy(asc(memories.id))
    .limit(1)
    .get();
  check(memory !== undefined, 'a memory with tags');
  const tags: string[] = memory!.tags;
  check(Array.isArray(tags) && typeof tags[0] === 'string', 'memories.tags is a string array');
  const kind: 'fact' | 'preference' | 'episode' | 'instruction' | 'relationship' = memory!.kind;
  const tagged = db
    .select({ id: memories.id, kind: memories.kind })
    .from(memoryTags)
    .innerJoin(memories, eq(memories.id, memoryTags.memoryId))
    .where(eq(memoryTags.tag, tags[0]))
    .orderBy(asc(memories.id))
    .all();
  check(tagged.some((r) => r.id === memory!.id), 'memory_tags finds the memory by its tag');
  const plan = sqlite
    .prepare('EXPLAIN QUERY PLAN SELECT memoryId FROM memory_tags WHERE tag = ?')
    .all(tags[0]) as { detail: string }[];
  check(plan.some((p) => p.detail.includes('idx_memory_tags_tag')), 'the tag query uses its index');
  report.memory = { id: memory!.id, kind, tags, taggedWithFirstTag: tagged.length };

  // A relational query through relations.ts, and the catalog's views.
  const withMemories = db.query.personas.findMany({
    where: isNull(personas.deletedAt),
    orderBy: asc(personas.id),
    with: { memories: { orderBy: asc(memories.id) } },
  }).sync();
  const persona = withMemories.sort((a, b) => b.memories.length - a.memories.length)[0];
  check(persona !== undefined, 'an active persona');
  const active = db.select().from(activePersonas).all();
  const activeByTable = db.select({ id: personas.id }).from(personas).where(isNull(personas.deletedAt)).all();
  check(active.length === activeByTable.length, 'active_personas lists the personas not deleted');
  const ofPersona = db
    .select()
    .from(personaMemories)
    .where(eq(personaMemories.personaId, persona!.id))
    .all();
  check(ofPersona.length === persona!.memories.length, 'persona_memories matches the relation');
  check(ofPersona.every((m) => Array.isArray(m.tags)), 'persona_memories.tags parsed');
  report.persona = {
    id: persona!.id,
    name: persona!.name,
    memories: persona!.memories.length,
    firstMemoryTags: persona!.memories[0]?.tags ?? null,
  };
  report.activePersonas = active.length;

  // Client documents come back as typed objects; config values as parsed JSON.
  const prefs = db.select().from(userPreferences).get();
  check(prefs === undefined || typeof prefs.value.sendOnEnter === 'boolean', 'userPreferences parsed');
  report.userPreferences = prefs ? { theme: prefs.value.theme, fontSize: prefs.value.fontSize } : null;
  const configRow = db.select().from(config).orderBy(asc(config.key)).limit(1).get();
  report.config = configRow ? { key: configRow.key, valueType: typeof configRow.value } : null;

  sqlite.close();
  const after = fs.readdirSync(folder).sort();
  check(JSON.stringify(before) === JSON.stringify(after), `no file left beside the database (${after})`);
  report.filesInFolder = after;
  return report;
}

function tagsOf(db: ReturnType<typeof open>['db'], id: string): string[] {
  return db
    .select({ tag: memoryTags.tag })
    .from(memoryTags)
    .where(eq(memoryTags.memoryId, id))
    .orderBy(asc(memoryTags.tag))
    .all()
    .map((r) => r.tag);
}

function write(file: string, migrationsFolder: string, later?: string) {
  const { sqlite, db } = open(file, false);
  const report: Record<string, unknown> = {};
  const applied = () => sqlite.prepare('SELECT hash, created_at FROM __drizzle_migrations').all();
  const shape = () =>
    JSON.stringify(sqlite.prepare('SELECT type, name, sql FROM sqlite_master ORDER BY name').all());
  const [appliedBefore, shapeBefore] = [applied(), shape()];
  migrate(db, { migrationsFolder });
  check(JSON.stringify(applied()) === JSON.stringify(appliedBefore), 'migrate() applied nothing');
  check(shape() === shapeBefore, 'migrate() changed no table');
  report.migrateNoop = { drizzleMigrations: appliedBefore.length };

  // The app writes a memory with tags: the triggers keep memory_tags in step.
  const persona = db.select().from(activePersonas).orderBy(asc(activePersonas.id)).limit(1).get();
  const now = new Date().toISOString();
  db.insert(memories)
    .values({
      id: 'consumer-memory',
      personaId: persona!.id!,
      content: 'written by the new app',
      kind: 'fact',
      tags: ['handoff', 'drizzle', 'handoff'],
      createdAt: now,
      updatedAt: now,
    })
    .run();
  const inserted = tagsOf(db, 'consumer-memory');
  check(JSON.stringify(inserted) === '["drizzle","handoff"]', `tags after insert: ${inserted}`);
  db.update(memories).set({ tags: ['drizzle', 'sqlite'] }).where(eq(memories.id, 'consumer-memory')).run();
  const updated = tagsOf(db, 'consumer-memory');
  check(JSON.stringify(updated) === '["drizzle","sqlite"]', `tags after update: ${updated}`);
  db.delete(memories).where(eq(memories.id, 'consumer-memory')).run();
  const deleted = tagsOf(db, 'consumer-memory');
  check(deleted.length === 0, `tags after delete: ${deleted}`);
  const drift = sqlite
    .prepare(
      `SELECT (SELECT COUNT(*) FROM (SELECT m.id, j.value FROM memories m, json_each(m.tags) j
               EXCEPT SELECT memoryId, tag FROM memory_tags))
            + (SELECT COUNT(*) FROM (SELECT memoryId, tag FROM memory_tags
               EXCEPT SELECT m.id, j.value FROM memories m, json_each(m.tags) j)) AS n`,
    )
    .get() as { n: number };
  check(drift.n === 0, 'memory_tags in step with memories.tags');
  report.memoryTags = { afterInsert: inserted, afterUpdate: updated, afterDelete: deleted };

  // Foreign keys hold under the app's writes (PRAGMA foreign_keys=ON).
  let refused = false;
  try {
    db.insert(memories)
      .values({ id: 'orphan', personaId: 'nobody', content: '', kind: 'fact', tags: [], createdAt: now, updatedAt: now })
      .run();
  } catch (e) {
    refused = String(e).includes('FOREIGN KEY');
  }
  check(refused, 'a memory of a missing persona is refused');
  report.foreignKeyRefused = refused;

  // Booleans and timestamps written by Drizzle are stored as the projector stores them.
  db.insert(plugins)
    .values({
      id: 'consumer-plugin',
      name: 'Consumer',
      version: '1.0.0',
      manifest: {
        name: 'Consumer',
        version: '1.0.0',
        description: 'written by the new app',
        author: { name: 'test' },
        entry: 'index.js',
        permissions: [],
        minAppVersion: '1.0.0',
        settings: {},
      },
      enabled: true,
      installedAt: new Date(1700000000123),
    })
    .run();
  const raw = sqlite
    .prepare("SELECT enabled, installedAt, typeof(installedAt) AS t FROM plugins WHERE id = 'consumer-plugin'")
    .get() as { enabled: number; installedAt: number; t: string };
  check(raw.enabled === 1 && raw.installedAt === 1700000000123 && raw.t === 'integer', 'stored as 0/1 and epoch ms');
  report.pluginStored = raw;

  if (later) {
    migrate(db, { migrationsFolder: later });
    report.laterMigration = { drizzleMigrations: applied().length };
    check(applied().length === appliedBefore.length + 1, 'the later migration applied on top');
  }
  check(sqlite.pragma('integrity_check', { simple: true }) === 'ok', 'integrity_check');
  check((sqlite.pragma('foreign_key_check') as unknown[]).length === 0, 'foreign_key_check');
  sqlite.close();
  return report;
}

const [mode, file, ...rest] = process.argv.slice(2);
const report = mode === 'read' ? read(file) : mode === 'write' ? write(file, rest[0], rest[1]) : null;
if (report === null) throw new Error(`usage: app.js read|write APP_DB [MIGRATIONS [LATER]]`);
console.log(JSON.stringify(report, null, 2));
