// Deterministic PRNG + bookmark texts (urls, multilingual titles, tags, notes) for the readinglist generator.

// ---------------------------------------------------------------- PRNG (splitmix32 -> sfc32), same as LiveStore todomvc's and ai-desk's corpus.mjs
export const makeRng = (seed) => {
  let s = seed >>> 0
  const splitmix = () => {
    s = (s + 0x9e3779b9) >>> 0
    let z = s
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0
    return (z ^ (z >>> 16)) >>> 0
  }
  let a = splitmix(), b = splitmix(), c = splitmix(), d = splitmix()
  const next = () => {
    a >>>= 0; b >>>= 0; c >>>= 0; d >>>= 0
    let t = (a + b) | 0
    a = b ^ (b >>> 9)
    b = (c + (c << 3)) | 0
    c = (c << 21) | (c >>> 11)
    d = (d + 1) | 0
    t = (t + d) | 0
    c = (c + t) | 0
    return (t >>> 0) / 4294967296
  }
  for (let i = 0; i < 16; i++) next()
  const rng = {
    next,
    int: (lo, hi) => lo + Math.floor(next() * (hi - lo + 1)), // inclusive
    chance: (p) => next() < p,
    pick: (arr) => arr[Math.floor(next() * arr.length)],
    pickWeighted: (entries) => {
      let total = 0
      for (const [, w] of entries) total += w
      let r = next() * total
      for (const [v, w] of entries) {
        if ((r -= w) < 0) return v
      }
      return entries[entries.length - 1][0]
    },
    sample: (arr, n) => {
      const copy = arr.slice()
      const out = []
      while (out.length < n && copy.length > 0) out.push(copy.splice(Math.floor(next() * copy.length), 1)[0])
      return out
    },
  }
  // nanoid-like ids (the TodoMVC example uses nanoid()); alphabet = nanoid's url alphabet
  const ALPH = 'useandom-26T198340PX75pxJACKVERYMINDBUSHWOLF_GQZbfghjklqvwyzrict'
  rng.id = (len = 21) => {
    let s = ''
    for (let i = 0; i < len; i++) s += ALPH[Math.floor(next() * 64)]
    return s
  }
  return rng
}

// ---------------------------------------------------------------- pools

const HOSTS = ['example.com', 'blog.example.org', 'news.example.net', 'docs.example.dev', 'wiki.example.de',
  'ja.example.jp', 'example.com.br', 'xn--bcher-kva.example', 'localhost:8080', 'example.co.uk']
const PATH_WORDS = ['sqlite', 'event-sourcing', 'local-first', 'crdt', 'rebase', 'migrations', 'json', 'rust',
  'python', 'typescript', 'gardening', 'sourdough', 'cycling', 'kraków', 'über', '東京', 'café']
const TITLES = ['How SQLite stores a row', 'Local-first software: you own your data', 'Event sourcing, the hard parts',
  'A gentle intro to CRDTs', 'Why we moved off the ORM', 'Sourdough for the impatient 🍞', 'Die besten Radwege in Berlin',
  'ローカルファーストとは', '如何写好迁移脚本', 'Как читать исходники SQLite', 'Receitas de pão de queijo 🧀',
  'מדריך קצר ל-JSON', 'دليل البرمجة الوظيفية', 'Ngủ đủ giấc: tại sao?', 'Comment relire un PR',
  "Robert'); DROP TABLE bookmarks;--", '<script>alert("title")</script> & friends', 'Tabs\tnewlines\nand CRLF\r\n',
  'Emoji zoo: 👨‍👩‍👧‍👦 🇯🇵 👍🏿 𝔘𝔫𝔦𝔠𝔬𝔡𝔢', '   spaces around   ', '', 'x']
const TAGS = ['sqlite', 'to-read', 'later', 'research', 'recipe', 'travel✈️', 'C++', '#hashtag', 'work', 'fun',
  'long read', 'über', '日本語', 'deep-dive', 'video', 'tools']
const NOTES = ['Read the second half again.', 'Quote for the talk: "make it work, then make it right".',
  'Siehe Abschnitt 3.', '要点：第二段。', 'Compare with the 2019 version', '🔥🔥🔥', 'path C:\\tmp\\x and regex ^\\d+$',
  'line one\nline two', 'bell \u0007 escape \u001b', '']
const COLLECTIONS = ['Inbox', 'Work', 'Cooking 🍳', 'Leseliste', '読む', 'Someday', 'Talks', 'Папка']
const COLORS = ['#ff6b6b', '#4ecdc4', '#ffe66d', '#1a535c', '#888888']

export const makeCorpus = (rng) => {
  const url = () => {
    const words = rng.sample(PATH_WORDS, rng.int(1, 3))
    const q = rng.chance(0.2) ? `?utm_source=x&id=${rng.int(1, 99999)}#frag` : ''
    return `${rng.chance(0.9) ? 'https' : 'http'}://${rng.pick(HOSTS)}/${words.join('/')}${q}`
  }
  const title = () => (rng.chance(0.1) ? rng.pick(TITLES) + ' — ' + 'long '.repeat(rng.int(50, 400)) : rng.pick(TITLES))
  const tags = () => rng.sample(TAGS, rng.pick([0, 1, 1, 2, 2, 3, 5]))
  const note = () => rng.pick(NOTES)
  const collectionName = () => rng.pick(COLLECTIONS) + (rng.chance(0.3) ? ` ${rng.int(2, 9)}` : '')
  const color = () => rng.pick(COLORS)
  return { url, title, tags, note, collectionName, color }
}
