// Stock Yjs clients (yjs + y-websocket's WebsocketProvider over ws), driven line by line.
//
// Reads one JSON command per line on stdin, answers one JSON line on stdout with the same
// "id". Clients are named; each has its own Y.Doc (text "t", map "m"). Used by
// tests/ui/sync and benchmarks/collab.py.
import readline from 'node:readline'
import WebSocket from 'ws'
import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'

const clients = new Map()

const b64 = (bytes) => Buffer.from(bytes).toString('base64')

function polyfill (options) {
  // y-websocket constructs `new WebSocketPolyfill(url)`: add the Origin (Channels checks
  // it against ALLOWED_HOSTS) and any headers, as a browser or a server client would.
  return class extends WebSocket {
    constructor (url, protocols) {
      super(url, protocols, { origin: options.origin, headers: options.headers || {} })
    }
  }
}

function snapshot (client) {
  const { doc, provider } = client
  const states = {}
  for (const [clientId, state] of provider.awareness.getStates()) {
    if (clientId !== doc.clientID) states[clientId] = state
  }
  return {
    text: doc.getText('t').toString(),
    map: doc.getMap('m').toJSON(),
    stateVector: b64(Y.encodeStateVector(doc)),
    synced: provider.synced,
    closeCodes: client.closeCodes,
    awareness: states,
    clientId: doc.clientID,
    received: client.received
  }
}

function until (predicate, timeoutMs, what) {
  return new Promise((resolve, reject) => {
    const started = Date.now()
    const tick = () => {
      let value
      try { value = predicate() } catch (error) { reject(error); return }
      if (value) { resolve(value); return }
      if (Date.now() - started > timeoutMs) { reject(new Error(`timed out waiting for ${what}`)); return }
      setTimeout(tick, 5)
    }
    tick()
  })
}

const handlers = {
  connect ({ name, server, document, params, headers, origin, reconnect }) {
    const doc = new Y.Doc()
    const client = { doc, closeCodes: [], received: 0, stamps: [] }
    const provider = new WebsocketProvider(server, `${document}/`, doc, {
      WebSocketPolyfill: polyfill({ origin, headers }),
      params: params || {},
      disableBc: true,
      maxBackoffTime: 200
    })
    client.provider = provider
    provider.on('connection-close', (event) => {
      if (event) client.closeCodes.push(event.code)
      if (!reconnect) provider.shouldConnect = false
    })
    doc.on('update', (update, origin) => {
      if (origin === provider) client.received += 1
    })
    // Benchmarks: when a writer's stamped map entry arrives, record its latency.
    doc.getMap('stamps').observe((event) => {
      if (event.transaction.origin !== provider) return
      const now = performance.timeOrigin + performance.now()
      for (const key of event.keysChanged) {
        const sent = doc.getMap('stamps').get(key)
        if (typeof sent === 'number') client.stamps.push(now - sent)
      }
    })
    clients.set(name, client)
    return {}
  },
  async synced ({ name, timeoutMs = 10000 }) {
    const client = clients.get(name)
    const { provider } = client
    await until(() => provider.synced, timeoutMs,
      `${name} synced (connected ${provider.wsconnected}, closes ${client.closeCodes}, url ${provider.url})`)
    return snapshot(client)
  },
  async closed ({ name, timeoutMs = 10000 }) {
    const client = clients.get(name)
    await until(() => client.closeCodes.length > 0, timeoutMs, `${name} closed`)
    return snapshot(client)
  },
  insert ({ name, index, text }) {
    const t = clients.get(name).doc.getText('t')
    t.insert(Math.min(index, t.length), text)
    return {}
  },
  delete ({ name, index, length }) {
    const t = clients.get(name).doc.getText('t')
    const start = Math.min(index, t.length)
    t.delete(start, Math.min(length, t.length - start))
    return {}
  },
  set ({ name, key, value }) {
    clients.get(name).doc.getMap('m').set(key, value)
    return {}
  },
  awareness ({ name, state }) {
    clients.get(name).provider.awareness.setLocalState(state)
    return {}
  },
  state ({ name }) {
    return snapshot(clients.get(name))
  },
  async wait ({ name, text, mapKeys, awarenessCount, received, timeoutMs = 10000 }) {
    const client = clients.get(name)
    await until(() => {
      const s = snapshot(client)
      if (text !== undefined && s.text !== text) return false
      if (mapKeys !== undefined && !mapKeys.every((k) => k in s.map)) return false
      if (awarenessCount !== undefined && Object.keys(s.awareness).length !== awarenessCount) return false
      if (received !== undefined && s.received < received) return false
      return true
    }, timeoutMs, `${name} to reach ${JSON.stringify({ text, mapKeys, awarenessCount, received })}`)
    return snapshot(client)
  },
  // The socket dies without a close frame or awareness goodbye (a crashed tab, a lost network).
  terminate ({ name }) {
    const { provider } = clients.get(name)
    provider.shouldConnect = false
    provider.ws?.terminate()
    return {}
  },
  disconnect ({ name }) {
    const client = clients.get(name)
    client.provider.destroy()
    clients.delete(name)
    return {}
  },
  // Benchmarks: `count` map writes stamped with the send time, `perSecond` at most.
  async write ({ name, count, perSecond, prefix }) {
    const { doc } = clients.get(name)
    const stamps = doc.getMap('stamps')
    const gap = perSecond ? 1000 / perSecond : 0
    const started = performance.now()
    for (let i = 0; i < count; i++) {
      stamps.set(`${prefix}${i}`, performance.timeOrigin + performance.now())
      if (gap) {
        const due = started + (i + 1) * gap
        const wait = due - performance.now()
        if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait))
      } else if (i % 20 === 19) {
        await new Promise((resolve) => setImmediate(resolve))
      }
    }
    return {}
  },
  // Benchmarks: every writer writes `count` stamped entries (at `perSecond` each, or as
  // fast as it can); answers when every client holds all of them, with the time that took
  // and each receiver's latency per entry (ms).
  async run ({ writers, readers, count, perSecond, timeoutMs = 300000 }) {
    const everyone = [...new Set([...writers, ...readers])]
    for (const name of everyone) clients.get(name).stamps = []
    const total = writers.length * count
    const started = performance.now()
    await Promise.all(writers.map((name) => handlers.write({ name, count, perSecond, prefix: `${name}-` })))
    await until(
      () => everyone.every((name) => clients.get(name).doc.getMap('stamps').size >= total),
      timeoutMs,
      'every client to hold every entry'
    )
    const elapsedMs = performance.now() - started
    return { elapsedMs, total, latencies: everyone.flatMap((name) => clients.get(name).stamps) }
  },
  // Raw frames on a plain socket (malformed input tests).
  async raw ({ url, origin, headers, frames, timeoutMs = 5000 }) {
    const ws = new WebSocket(url, { origin, headers: headers || {} })
    const received = []
    const code = await new Promise((resolve, reject) => {
      const timer = setTimeout(() => resolve(null), timeoutMs)
      ws.on('open', () => {
        for (const frame of frames) {
          ws.send(frame.text !== undefined ? frame.text : Buffer.from(frame.b64, 'base64'))
        }
      })
      ws.on('message', (data) => received.push(b64(data)))
      ws.on('close', (closeCode) => { clearTimeout(timer); resolve(closeCode) })
      ws.on('error', (error) => { clearTimeout(timer); reject(error) })
    })
    if (code === null) ws.terminate()
    return { code, received }
  }
}

const lines = readline.createInterface({ input: process.stdin })
lines.on('line', async (line) => {
  const command = JSON.parse(line)
  let answer
  try {
    answer = { id: command.id, ok: true, ...(await handlers[command.op](command)) }
  } catch (error) {
    answer = { id: command.id, ok: false, error: String(error && error.message ? error.message : error) }
  }
  process.stdout.write(JSON.stringify(answer) + '\n')
})
lines.on('close', () => {
  for (const { provider } of clients.values()) provider.destroy()
  process.exit(0)
})
