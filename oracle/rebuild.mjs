#!/usr/bin/env node
// The oracle: real LiveStore 0.4.0 (adapter-node) rebuilds the state DB from an eventlog.
//
//   node rebuild.mjs STORE_DIR OUT_STATE_DB [--schema schema.mjs]
//   node rebuild.mjs --jobs jobs.ndjson --results results.ndjson [--schema schema.mjs]
//
// STORE_DIR holds eventlog@6.db. The rebuild runs on a temporary copy holding only the
// eventlog, so LiveStore finds no state DB and rematerializes every event
// (common/rematerialize-from-eventlog.ts; FORMAT.md §3), exactly as an app does after a
// schema change. --schema is any app's LiveStore schema module exporting `schema`
// (default: the ai-desk app's, schemas/ai-desk/livestore-schema.mjs).
//
// --jobs reads one {"store": DIR, "out": DB} object per line and rebuilds each in this one
// process (booting Node and LiveStore once costs more than a small rebuild). For every
// job one JSON line goes to the --results file: {"store", "out", "ok": true} or {"store",
// "out", "ok": false, "error": "<LiveStore's reason, one line>"} (LiveStore refused the
// log, e.g. args its schema cannot decode). LiveStore logs to stdout and stderr itself.
import fs from 'node:fs'
import { register } from 'node:module'
import os from 'node:os'
import path from 'node:path'
import { pathToFileURL } from 'node:url'

register('./resolve-hooks.mjs', import.meta.url)

const HERE = path.dirname(new URL(import.meta.url).pathname)
const DEFAULT_SCHEMA = path.join(HERE, '..', 'schemas', 'ai-desk', 'livestore-schema.mjs')
const EVENTLOG = 'eventlog@6.db'

const usage = () => {
  console.error('usage: rebuild.mjs STORE_DIR OUT_STATE_DB [--schema FILE]')
  console.error('       rebuild.mjs --jobs FILE --results FILE [--schema FILE]')
  process.exit(2)
}

const parseArgs = (argv) => {
  const options = { schema: DEFAULT_SCHEMA, jobs: undefined, results: undefined, positional: [] }
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]
    if (arg === '--schema' || arg === '--jobs' || arg === '--results') {
      if (i + 1 >= argv.length) usage()
      options[arg.slice(2)] = argv[++i]
    } else if (arg.startsWith('--')) {
      usage()
    } else {
      options.positional.push(arg)
    }
  }
  return options
}

/** LiveStore's reason in one line: Effect's ParseError tree (path and expectation) and the
 * event it was decoding, when there is one; else the innermost cause's first line. */
const oneLine = (error) => {
  const chain = []
  for (let e = error; e !== undefined && e !== null && chain.length < 10; e = e.cause) {
    chain.push(e)
    if (e.cause === e) break
  }
  const texts = chain.map((e) => String(e?.message ?? e))
  const all = texts.join('\n')
  const tree = all.split('\n').filter((line) => line.includes('└─')).map((line) => line.replace(/^[\s└─]+/, '').replace(/, "note": .*$/, ''))
  const event = /event definition \\?"([^"\\]+)/.exec(all)?.[1]
  if (tree.length > 0) {
    const unique = [...new Set(tree)]
    return `${event ? `${event}: ` : ''}${unique.join(' ')}`.slice(0, 400)
  }
  const last = texts[texts.length - 1]
  return (last.split('\n').find((line) => line.trim() !== '') ?? last).slice(0, 400)
}

const options = parseArgs(process.argv.slice(2))
const { makeAdapter } = await import('@livestore/adapter-node')
const { createStorePromise } = await import('@livestore/livestore')
const schemaModule = await import(pathToFileURL(path.resolve(options.schema)).href)
if (schemaModule.schema === undefined) {
  console.error(`${options.schema}: exports no \`schema\` (a LiveStore makeSchema(...) result)`)
  process.exit(2)
}

/** Rebuild STORE/eventlog@6.db into OUT; throws LiveStore's error when it refuses the log. */
const rebuild = async (store, out) => {
  const source = path.join(store, EVENTLOG)
  if (!fs.existsSync(source)) throw new Error(`${store}: no ${EVENTLOG}`)
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'ls-oracle-'))
  // A fixed storeId: the directory name only; nothing of it is in the eventlog's rows.
  const storeId = 'oracle'
  const dir = path.join(base, storeId)
  fs.mkdirSync(dir)
  fs.copyFileSync(source, path.join(dir, EVENTLOG))
  try {
    const adapter = makeAdapter({ storage: { type: 'fs', baseDirectory: base }, clientId: 'oracle' })
    const live = await createStorePromise({ adapter, schema: schemaModule.schema, storeId, disableDevtools: true })
    await live.shutdownPromise()
    const states = fs.readdirSync(dir).filter((f) => f.startsWith('state') && f.endsWith('.db'))
    if (states.length !== 1) throw new Error(`expected one state DB, found ${states.join(', ') || 'none'}`)
    fs.mkdirSync(path.dirname(path.resolve(out)), { recursive: true })
    fs.copyFileSync(path.join(dir, states[0]), out)
  } finally {
    fs.rmSync(base, { recursive: true, force: true })
  }
}

if (options.jobs !== undefined) {
  if (options.positional.length || options.results === undefined) usage()
  fs.writeFileSync(options.results, '')
  const lines = fs.readFileSync(options.jobs, 'utf8').split('\n').filter((l) => l.trim() !== '')
  for (const line of lines) {
    const { store, out } = JSON.parse(line)
    try {
      await rebuild(store, out)
      fs.appendFileSync(options.results, JSON.stringify({ store, out, ok: true }) + '\n')
    } catch (error) {
      fs.appendFileSync(options.results, JSON.stringify({ store, out, ok: false, error: oneLine(error) }) + '\n')
    }
  }
  // A store whose boot failed leaves LiveStore's leader running: end the process ourselves.
  process.exit(0)
} else {
  if (options.positional.length !== 2) usage()
  const [store, out] = options.positional
  try {
    await rebuild(store, out)
  } catch (error) {
    console.error(`LiveStore refused ${store}: ${oneLine(error)}`)
    process.exit(1)
  }
  console.error(`rebuilt ${out} from ${path.join(store, EVENTLOG)}`)
  process.exit(0)
}
