#!/usr/bin/env node
// Generate a REAL LiveStore 0.4.0 database pair (eventlog + state) for the reading-list app (schema.mjs) with
// @livestore/adapter-node, by committing a deterministic pseudo-random event mix through the public Store API.
// Adapted from LiveStore todomvc's gen.mjs (../shared/livestore/apps/todomvc/gen.mjs): the same options, session,
// sync, restart and manifest code; only the app model (what a user does) is this app's.
//
// Usage: node gen.mjs --seed 1 --events 300 --out ./out/small [--store-id readinglist] [--client-id desktop-A]
//          [--flush-every 50] [--restarts 2] [--max-batch 8]
//          [--sync none|mock] [--remote-rate 0.05] [--remote-client-id laptop-B] [--stall-ms 1500]
//
// --sync mock: connect the store to LiveStore's own in-process MockSyncBackend (@livestore/common
// makeMockSyncBackend, the one LiveStore's tests use). With --remote-rate > 0 a simulated second device
// (--remote-client-id) pushes 1-3 synced events to the backend *while* a local commit is still pending, which
// makes LiveStore rebase the local event(s) (seqNumRebaseGeneration > 0 in the eventlog).
//
// Output: <out>/<storeId>/eventlog@6.db and <out>/<storeId>/state<hash>@6.db exactly as the Node adapter writes
// them (storage: { type: 'fs', baseDirectory: <out> }), plus <out>/manifest.json (options, what was committed,
// and what is really in the files, read back with the sqlite3 CLI when it is installed).
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'

import { makeAdapter } from '@livestore/adapter-node'
import { makeMockSyncBackend } from '@livestore/common'
import { createStorePromise, liveStoreVersion, Schema } from '@livestore/livestore'
import { Effect, Scope } from 'effect'

import { makeCorpus, makeRng } from './corpus.mjs'
import { events, schema } from './schema.mjs'

const APP = 'readinglist'

// ---------------------------------------------------------------- args
const argv = process.argv.slice(2)
const arg = (name, dflt) => {
  const i = argv.indexOf(`--${name}`)
  return i === -1 ? dflt : argv[i + 1]
}
const SEED = Number(arg('seed', '1'))
const N = Number(arg('events', '300'))
const OUT = path.resolve(arg('out', './out/fixture'))
const STORE_ID = arg('store-id', APP)
const CLIENT_ID = arg('client-id', 'desktop-A')
const FLUSH_EVERY = Number(arg('flush-every', '50')) // commits between waits for the leader to persist
const RESTARTS = Number(arg('restarts', '2')) // clean shutdown + reopen of the store mid-run
const MAX_BATCH = Number(arg('max-batch', '8')) // max events in a single multi-event store.commit()
const SYNC = arg('sync', 'none')
const REMOTE_RATE = SYNC === 'mock' ? Number(arg('remote-rate', '0.05')) : 0
const REMOTE_CLIENT_ID = arg('remote-client-id', 'laptop-B')
const STALL_MS = Number(arg('stall-ms', '1500'))
if (SYNC !== 'none' && SYNC !== 'mock') throw new Error(`--sync must be none|mock`)
// --dry-run: run only the app model (no LiveStore, no files) and print its stats; for tuning the weights
const DRY = argv.includes('--dry-run')

if (!DRY && fs.existsSync(path.join(OUT, STORE_ID))) {
  console.error(`refusing to overwrite existing ${path.join(OUT, STORE_ID)}`)
  process.exit(2)
}
if (!DRY) fs.mkdirSync(OUT, { recursive: true })

const rng = makeRng(SEED)
const C = makeCorpus(rng)
// ---------------------------------------------------------------- simulated clock (deterministic)
let clock = Date.UTC(2024, 2, 4, 7, 30, 0) + (SEED % 1000) * 86_400_000
const tick = () => {
  const gap = rng.pickWeighted([
    [() => rng.int(300, 90_000), 8],
    [() => rng.int(90_000, 6 * 3_600_000), 2],
    [() => rng.int(6 * 3_600_000, 4 * 86_400_000), 0.5],
  ])()
  clock += gap
  return new Date(clock)
}

// ---------------------------------------------------------------- app model (to target existing rows)
const bookmarks = new Map() // id -> { archived, favorite, collectionId, deleted }
const collections = new Map() // id -> { name, deleted }
const alive = () => [...bookmarks].filter(([, b]) => !b.deleted)
const liveCollections = () => [...collections].filter(([, c]) => !c.deleted)
let logsWritten = 0

const modelStats = () => ({
  bookmarksCreated: bookmarks.size,
  alive: alive().length,
  archived: alive().filter(([, b]) => b.archived).length,
  deleted: [...bookmarks.values()].filter((b) => b.deleted).length,
  collections: liveCollections().length,
  readingLogRows: logsWritten,
})
const modelSamples = [] // model stats at every 10% of a dry run
const stats = { byName: {}, commits: 0, multiEventCommits: 0, mixedSyncedAndClientOnlyCommits: 0, actions: undefined }
const count = (evs) => {
  for (const e of evs) stats.byName[e.name] = (stats.byName[e.name] ?? 0) + 1
}
const isClientOnly = (name) => schema.eventsDefsMap.get(name)?.options.clientOnly === true

const CLIENT_ONLY_ACTIONS = new Set(['settings', 'scroll'])
const actionCounts = {}
const nextAction = (progress, syncedOnly) => {
  const vis = alive()
  const arch = vis.filter(([, b]) => b.archived).length
  const cols = liveCollections().length
  // a personal reading list: around a hundred bookmarks
  const wantNew = vis.length < 5 ? 30 : 8 * Math.max(0.05, 1 - vis.length / 120)
  const f = Math.min(1.5, vis.length / 20)
  const weights = [
    ['save', wantNew],
    ['import', vis.length < 80 ? 0.5 : 0.1],
    ['edit', vis.length > 0 ? 3 * f : 0],
    ['editStale', bookmarks.size > vis.length ? 0.2 : 0], // another device edits what was deleted here
    ['read', vis.length > 0 ? 3 * f : 0],
    ['archive', vis.length - arch > 0 ? 2 * f : 0],
    ['unarchive', arch > 0 ? 0.4 * f : 0],
    ['favorite', vis.length > 0 ? 1 * f : 0],
    ['move', vis.length > 0 && cols > 0 ? 1 * f : 0],
    ['delete', vis.length > 0 ? 1 * f : 0],
    ['clearArchived', arch > 0 ? (arch >= 5 ? 0.15 : 0.03) * f : 0],
    ['createCollection', cols < 6 ? 1 : 0.1],
    ['deleteCollection', cols > 1 ? 0.15 : 0],
    ['settings', 1.5],
    ['scroll', vis.length > 0 ? 3 : 0],
  ]
  // coverage nudge: in the second half of a run, action kinds that never happened get a x25 weight
  let w = progress > 0.5 ? weights.map(([a, x]) => [a, x > 0 && !actionCounts[a] ? x * 25 : x]) : weights
  if (syncedOnly) w = w.map(([a, x]) => [a, CLIENT_ONLY_ACTIONS.has(a) ? 0 : x])
  const action = rng.pickWeighted(w)
  actionCounts[action] = (actionCounts[action] ?? 0) + 1
  return action
}

// Returns the events of ONE store.commit(); never more than `max` events (so bookkeeping never has to be undone).
const buildCommit = (progress, max, syncedOnly = false) => {
  const action = nextAction(progress, syncedOnly)
  const pickAlive = (pred = () => true) => rng.pick(alive().filter(([, b]) => pred(b)))
  switch (action) {
    case 'save': {
      const id = rng.id()
      const cols = liveCollections()
      // collectionId is Schema.optional: half the time the key is left out of argsJson
      const collectionId = cols.length > 0 && rng.chance(0.5) ? rng.pick(cols)[0] : undefined
      bookmarks.set(id, { archived: false, favorite: false, collectionId, deleted: false })
      return [events.bookmarkSaved({ id, url: C.url(), title: C.title(), tags: C.tags(), savedAt: tick(), ...(collectionId ? { collectionId } : {}) })]
    }
    case 'import': {
      // "import from another browser": several upserts in one commit; some ids are already here (row replaced)
      const n = Math.max(1, Math.min(rng.int(2, MAX_BATCH), max))
      return Array.from({ length: n }, () => {
        const vis = alive()
        const id = vis.length > 0 && rng.chance(0.3) ? rng.pick(vis)[0] : rng.id()
        const archived = rng.chance(0.2)
        // a replaced row gets LiveStore's defaults for what the import does not carry (favorite, readAt, ...)
        bookmarks.set(id, { archived, favorite: false, collectionId: undefined, deleted: false })
        return events.bookmarkImported({
          id,
          source: { url: C.url(), title: C.title(), browser: rng.pick(['firefox', 'chrome', 'safari']) },
          tags: C.tags(),
          savedAt: tick(),
          archived,
        })
      })
    }
    case 'edit':
    case 'editStale': {
      const id =
        action === 'edit' ? pickAlive()[0] : rng.pick([...bookmarks].filter(([, b]) => b.deleted))[0]
      const args = { id }
      // optional fields: any subset, sometimes none at all (LiveStore then runs no UPDATE)
      if (rng.chance(0.4)) args.title = C.title()
      if (rng.chance(0.3)) args.note = rng.chance(0.3) ? null : C.note()
      if (rng.chance(0.3)) args.tags = C.tags()
      if (rng.chance(0.3)) args.rating = rng.chance(0.2) ? null : rng.pick([1, 2, 3, 4, 5, 3.5, 0.1 + 0.2])
      return [events.bookmarkEdited(args)]
    }
    case 'read': {
      // open a bookmark: one commit of the synced read event and the client document's lastOpenedId
      const [id] = pickAlive()
      logsWritten++
      const read = events.bookmarkRead({ id, logId: rng.id(), readAt: tick(), minutes: rng.int(0, 90) })
      return syncedOnly || max < 2 ? [read] : [read, events.readerSettingsSet({ lastOpenedId: id })]
    }
    case 'archive': {
      const [id, b] = pickAlive((b) => !b.archived)
      b.archived = true
      return [events.bookmarkArchived({ id })]
    }
    case 'unarchive': {
      const [id, b] = pickAlive((b) => b.archived)
      b.archived = false
      return [events.bookmarkUnarchived({ id })]
    }
    case 'favorite': {
      const [id, b] = pickAlive()
      b.favorite = !b.favorite
      return [events.bookmarkFavorited({ id, favorite: b.favorite })]
    }
    case 'move': {
      const [id, b] = pickAlive()
      const collectionId = rng.chance(0.2) ? null : rng.pick(liveCollections())[0]
      b.collectionId = collectionId ?? undefined
      return [events.bookmarkMoved({ id, collectionId })]
    }
    case 'delete': {
      const [id, b] = pickAlive()
      b.deleted = true
      return [events.bookmarkDeleted({ id })]
    }
    case 'clearArchived': {
      for (const b of bookmarks.values()) if (b.archived && !b.deleted) b.deleted = true
      return [events.archivedCleared({})]
    }
    case 'createCollection': {
      // sometimes a second device re-creates a known id: LiveStore's onConflict('id', 'update', { name })
      const known = liveCollections()
      const id = known.length > 0 && rng.chance(0.2) ? rng.pick(known)[0] : rng.id()
      collections.set(id, { name: C.collectionName(), deleted: false })
      const color = rng.chance(0.5) ? C.color() : undefined
      return [events.collectionCreated({ id, name: collections.get(id).name, ...(color ? { color } : {}), createdAt: tick() })]
    }
    case 'deleteCollection': {
      const [id, c] = rng.pick(liveCollections())
      c.deleted = true
      for (const b of bookmarks.values()) if (b.collectionId === id) b.collectionId = undefined
      return [events.collectionDeleted({ id })]
    }
    case 'settings': {
      tick()
      const r = rng.next()
      // partial sets; a nested `layout` is always set whole (the document's schema is partial at the top only)
      if (r < 0.3) return [events.readerSettingsSet({ theme: rng.pick(['light', 'dark', 'sepia']) })]
      if (r < 0.55) return [events.readerSettingsSet({ fontSize: rng.pick([12, 14, 16, 18, 20, 22.5]) })]
      if (r < 0.85) return [events.readerSettingsSet({ layout: { columns: rng.int(1, 3), justify: rng.chance(0.5) } })]
      if (r < 0.92) return [events.readerSettingsSet({ lastOpenedId: null })]
      return [events.readerSettingsSet({ theme: 'dark', fontSize: 18, layout: { columns: 2, justify: true }, lastOpenedId: null })]
    }
    case 'scroll': {
      const [id] = pickAlive()
      return [events.readingPositionSaved({ bookmarkId: id, progress: rng.chance(0.1) ? 1 : rng.next(), at: tick() })]
    }
    default:
      throw new Error(`unknown action ${action}`)
  }
}

// ---------------------------------------------------------------- LiveStore session (as in ../../gen/gen.mjs)
let mock
if (SYNC === 'mock' && !DRY) {
  const scope = Effect.runSync(Scope.make())
  mock = await Effect.runPromise(
    makeMockSyncBackend({ startConnected: true }).pipe(Effect.withSpan('livestore-gen:mock-sync'), Scope.extend(scope)),
  )
}
const REMOTE_SESSION_ID = SYNC === 'mock' ? rng.id() : undefined

const openStore = async () => {
  if (DRY) return { commit: () => {}, shutdownPromise: async () => {}, syncStatus: () => ({ pendingCount: 0 }) }
  const adapter = makeAdapter({
    storage: { type: 'fs', baseDirectory: OUT },
    clientId: CLIENT_ID,
    ...(mock ? { sync: { backend: () => mock.makeSyncBackend } } : {}),
  })
  return createStorePromise({ adapter, schema, storeId: STORE_ID, disableDevtools: true })
}

const brief = (st) => ({
  localHead: st.toJSON().localHead,
  upstreamHead: st.toJSON().upstreamHead,
  pending: st.pending.map((e) => `e${e.seqNum.global}.${e.seqNum.client}r${e.seqNum.rebaseGeneration}:${e.name}`),
})
class StallError extends Error {}
// mock-sync mode: wait until the session has handed everything to the leader AND the leader has no unconfirmed
// synced events; returns the backend head. Throws StallError if nothing moves for STALL_MS.
const waitBackend = async (store) => {
  let lastSig = ''
  let lastChange = performance.now()
  for (;;) {
    const { leader, session } = await store._dev.syncStates()
    const leaderGlobalPending = leader.pending.filter((e) => !isClientOnly(e.name)).length
    if (session.pending.length === 0 && leaderGlobalPending === 0) return leader.upstreamHead.global
    const sig = JSON.stringify([brief(leader), brief(session)])
    if (sig !== lastSig) {
      lastSig = sig
      lastChange = performance.now()
    } else if (performance.now() - lastChange > STALL_MS) {
      throw Object.assign(new StallError('sync stalled'), { detail: { leader: brief(leader), session: brief(session) } })
    }
    await new Promise((r) => setTimeout(r, 2))
  }
}
// On a stall: record it, cleanly shut the store down and reopen it (what a user restarting the app does).
const stalls = []
const waitBackendOrRecover = async () => {
  if (DRY) return 0
  for (let attempt = 0; ; attempt++) {
    try {
      return await waitBackend(store)
    } catch (err) {
      if (!(err instanceof StallError) || attempt >= 3) throw err
      stalls.push({ atCommittedEvents: committed, ...err.detail })
      console.error(`[gen] stall #${stalls.length} at ${committed} events -> restarting store: ${JSON.stringify(err.detail).slice(0, 300)}`)
      await store.shutdownPromise()
      const t2 = performance.now()
      store = await openStore()
      bootStarts.push({ atEvent: committed, bootMs: performance.now() - t2, reason: 'stall-recovery' })
    }
  }
}
// store.commit() returns before the leader persisted; without waiting, shutdown drops un-persisted events.
const waitLeader = async (store) => {
  const t0 = performance.now()
  while (store.syncStatus().pendingCount > 0) {
    if (performance.now() - t0 > 20_000) {
      const { leader, session } = await store._dev.syncStates()
      throw new Error(`waitLeader stuck: ${JSON.stringify({ leader: brief(leader), session: brief(session) })}`)
    }
    await new Promise((r) => setTimeout(r, 1))
  }
}
const settle = () => (DRY ? Promise.resolve() : mock ? waitBackendOrRecover() : waitLeader(store))

const bootStarts = []
let t = performance.now()
let store = await openStore()
bootStarts.push({ atEvent: 0, bootMs: performance.now() - t })

const restartPoints = Array.from({ length: RESTARTS }, (_, i) => Math.floor((N * (i + 1)) / (RESTARTS + 1))).sort((a, b) => a - b)
let nextRestartIdx = 0
let committed = 0
let commitMs = 0 // time inside store.commit() + waiting for the leader/backend
const tRun0 = performance.now()
let lastLog = performance.now()

while (committed < N) {
  const progress = committed / N
  let remote = []
  let remoteHead
  if (REMOTE_RATE > 0 && N - committed > 4 && rng.chance(REMOTE_RATE)) {
    // second device: 1-3 synced events, built *before* the local commit so bookkeeping matches final order
    const tw = performance.now()
    remoteHead = await waitBackendOrRecover()
    commitMs += performance.now() - tw
    const n = Math.min(rng.int(1, 3), N - committed - 1)
    while (remote.length < n) remote.push(...buildCommit(progress, n - remote.length, true))
  }
  const evs = buildCommit(progress, N - committed - remote.length)
  const t0 = performance.now()
  store.commit(...evs)
  if (remote.length > 0) {
    // the local events above are still pending (e{remoteHead+1}..); the backend now gets the remote device's
    // events at the same sequence numbers -> LiveStore must rebase the local ones
    const encoded = remote.map((e, i) => ({
      name: e.name,
      args: Schema.encodeSync(schema.eventsDefsMap.get(e.name).schema)(e.args),
      seqNum: remoteHead + 1 + i,
      parentSeqNum: remoteHead + i,
      clientId: REMOTE_CLIENT_ID,
      sessionId: REMOTE_SESSION_ID,
    }))
    if (!DRY) await Effect.runPromise(mock.advance(...encoded))
    // let the rebase settle before committing anything else (see ../../gen/README.md "Surprises")
    await waitBackendOrRecover()
    stats.remoteEvents = (stats.remoteEvents ?? 0) + remote.length
    stats.remoteBursts = (stats.remoteBursts ?? 0) + 1
    // the local events that were pending when the remote ones arrived = the ones LiveStore had to rebase
    // (NB: in the eventlog every later local row keeps the session's new seqNumRebaseGeneration, so
    // `seqNumRebaseGeneration > 0` counts far more rows than were actually moved)
    stats.localEventsPendingAtRemoteBurst = (stats.localEventsPendingAtRemoteBurst ?? 0) + evs.length
    count(remote)
    committed += remote.length
  }
  if ((stats.commits + 1) % FLUSH_EVERY === 0) await settle()
  commitMs += performance.now() - t0
  stats.commits++
  if (evs.length > 1) stats.multiEventCommits++
  if (evs.some((e) => isClientOnly(e.name)) && evs.some((e) => !isClientOnly(e.name))) stats.mixedSyncedAndClientOnlyCommits++
  count(evs)
  committed += evs.length

  if (nextRestartIdx < restartPoints.length && committed >= restartPoints[nextRestartIdx]) {
    nextRestartIdx++
    const t1 = performance.now()
    await settle()
    commitMs += performance.now() - t1
    await store.shutdownPromise()
    const t2 = performance.now()
    store = await openStore()
    bootStarts.push({ atEvent: committed, bootMs: performance.now() - t2 })
  }
  if (DRY && Math.floor((committed * 10) / N) > modelSamples.length) modelSamples.push({ committed, ...modelStats() })
  if (performance.now() - lastLog > 10_000) {
    lastLog = performance.now()
    console.error(`[gen] ${committed}/${N} events, ${(committed / (commitMs / 1000)).toFixed(0)} ev/s, rss ${(process.memoryUsage().rss / 1e6).toFixed(0)} MB`)
  }
}
{
  const t1 = performance.now()
  await settle()
  commitMs += performance.now() - t1
}
if (DRY) {
  console.log(JSON.stringify({ byName: stats.byName, commits: stats.commits, actions: actionCounts, model: modelStats(), samples: modelSamples }, null, 1))
  process.exit(0)
}
const finalLeaderState = mock ? (await store._dev.syncStates()).leader : undefined
stats.actions = actionCounts
stats.model = modelStats()
const syncStatus = store.syncStatus()
const tShut = performance.now()
await store.shutdownPromise()
const shutdownMs = performance.now() - tShut
const runMs = performance.now() - tRun0

// ---------------------------------------------------------------- read back what LiveStore wrote (sqlite3 CLI, read-only)
const dir = path.join(OUT, STORE_ID)
const files = fs.readdirSync(dir).map((f) => ({ file: `${STORE_ID}/${f}`, bytes: fs.statSync(path.join(dir, f)).size }))
const readBack = () => {
  const q = (file, sql) => {
    const out = execFileSync('sqlite3', ['-readonly', '-json', path.join(dir, file), sql], { encoding: 'utf8' })
    return out.trim() === '' ? [] : JSON.parse(out)
  }
  const eventlogFile = fs.readdirSync(dir).find((f) => /^eventlog@\d+\.db$/.test(f))
  const stateFile = fs.readdirSync(dir).find((f) => /^state.*@\d+\.db$/.test(f))
  const one = (file, sql) => Object.values(q(file, sql)[0] ?? {})[0]
  const eventlog = {
    file: eventlogFile,
    rows: one(eventlogFile, 'select count(*) from eventlog'),
    maxSeqNumGlobal: one(eventlogFile, 'select max(seqNumGlobal) from eventlog'),
    clientOnlyRows: one(eventlogFile, 'select count(*) from eventlog where seqNumClient > 0'),
    rebasedRows: one(eventlogFile, 'select count(*) from eventlog where seqNumRebaseGeneration > 0'),
    rebaseGenerations: Object.fromEntries(q(eventlogFile, 'select seqNumRebaseGeneration g, count(*) n from eventlog group by 1').map((r) => [r.g, r.n])),
    byName: Object.fromEntries(q(eventlogFile, 'select name, count(*) n from eventlog group by name order by n desc').map((r) => [r.name, r.n])),
    byClientId: Object.fromEntries(q(eventlogFile, 'select clientId, count(*) n from eventlog group by 1').map((r) => [r.clientId, r.n])),
    syncStatus: q(eventlogFile, 'select * from __livestore_sync_status'),
  }
  const tableNames = q(stateFile, "select name from sqlite_master where type='table' order by name").map((r) => r.name)
  const state = {
    file: stateFile,
    rows: Object.fromEntries(tableNames.map((t) => [t, one(stateFile, `select count(*) from "${t}"`)])),
  }
  return { eventlog, state }
}
let contents
try {
  contents = readBack()
} catch (err) {
  contents = { error: `sqlite3 read-back failed or sqlite3 not installed: ${String(err.message).slice(0, 200)}` }
}

const manifest = {
  app: APP,
  generator: `apps/${APP}/gen.mjs (LiveStore fixture generator)`,
  command: `run.sh gen.mjs ${argv.join(' ')}`,
  liveStoreVersion,
  node: process.version,
  seed: SEED,
  eventsCommitted: committed,
  storeId: STORE_ID,
  clientId: CLIENT_ID,
  sessionId: 'static (adapter-node default)',
  stateSchemaHash: schema.state.sqlite.hash,
  options: { flushEvery: FLUSH_EVERY, restarts: RESTARTS, maxBatch: MAX_BATCH, sync: SYNC, remoteRate: REMOTE_RATE, remoteClientId: SYNC === 'mock' ? REMOTE_CLIENT_ID : undefined, remoteSessionId: REMOTE_SESSION_ID },
  stats,
  contents,
  finalSyncStatus: syncStatus,
  stalls: mock ? { count: stalls.length, first5: stalls.slice(0, 5) } : undefined,
  finalLeaderHeads: finalLeaderState ? { localHead: finalLeaderState.toJSON().localHead, upstreamHead: finalLeaderState.toJSON().upstreamHead, pending: finalLeaderState.pending.length } : undefined,
  timings: {
    commitAndPersistMs: Math.round(commitMs),
    eventsPerSecond: Math.round(committed / (commitMs / 1000)),
    wallMsInclRestartsAndGeneration: Math.round(runMs),
    shutdownMs: Math.round(shutdownMs),
    boots: bootStarts.slice(0, 20).map((b) => ({ ...b, bootMs: Math.round(b.bootMs) })),
    bootCount: bootStarts.length,
  },
  files,
}
fs.writeFileSync(path.join(OUT, 'manifest.json'), JSON.stringify(manifest, null, 2) + '\n')
if (stalls.length > 0) fs.writeFileSync(path.join(OUT, 'stalls.log'), stalls.map((s) => JSON.stringify(s)).join('\n') + '\n')
console.error(`[gen] done: ${committed} committed, eventlog rows ${contents.eventlog?.rows}, files ${JSON.stringify(files)}`)
