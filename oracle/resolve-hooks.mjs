// Module resolution hook for the oracle: a LiveStore schema module given by path may live
// anywhere (e.g. ../shared/livestore/apps/todomvc/schema.mjs), where Node would not find
// the `@livestore/*` packages it imports. A bare specifier that does not resolve from the
// importing file is resolved from this directory instead, so the schema module and
// rebuild.mjs share ONE copy of @livestore/livestore (its symbols must be identical).
const ORACLE_URL = new URL('./rebuild.mjs', import.meta.url).href

const isBare = (specifier) =>
  !specifier.startsWith('.') && !specifier.startsWith('/') && !/^[a-z]+:/i.test(specifier)

export async function resolve(specifier, context, nextResolve) {
  try {
    return await nextResolve(specifier, context)
  } catch (error) {
    if (error?.code !== 'ERR_MODULE_NOT_FOUND' || !isBare(specifier)) throw error
    return nextResolve(specifier, { ...context, parentURL: ORACLE_URL })
  }
}
