#!/usr/bin/env node
// The Interledger side of tools/bench_payments.py: one role per process.
//
//   node ilp_peer.js connector CONFIG_JSON   an ilp-connector (createApp(config).listen())
//   node ilp_peer.js receiver BTP_URL SECRET_HEX
//   node ilp_peer.js sender BTP_URL SECRET_HEX
//
// Chain on loopback: sender -> connector c1 -> connector c2 -> receiver, BTP
// (WebSocket) on every link. The receiver derives each fulfillment from the
// packet's data, fulfillment = HMAC-SHA256(secret, data), checks that its
// SHA-256 is the prepare's execution condition and fulfills with it (as a
// STREAM receiver does with its shared secret); the sender checks every
// fulfillment against the condition it sent.
//
// Every process prints one JSON line {"ready": ...} on stdout when it is up.
// The sender then reads commands from stdin, one JSON line each:
//   {"destination": ADDR, "payments": N, "in_flight": K, "amount": "10000"}
// and answers one JSON line: {"seconds": S, "latencies_ms": [...], "failed": F,
// "reasons": {...}}.

'use strict'

const crypto = require('crypto')
const readline = require('readline')
const IlpPacket = require('ilp-packet')
const Ildcp = require('ilp-protocol-ildcp')
const BtpPlugin = require('ilp-plugin-btp')

const EXPIRY_MS = 30000

function hmac (secret, data) {
  return crypto.createHmac('sha256', secret).update(data).digest()
}

function sha256 (data) {
  return crypto.createHash('sha256').update(data).digest()
}

function ready (fields) {
  process.stdout.write(JSON.stringify({ ready: true, ...fields }) + '\n')
}

async function connector (configJson) {
  const { createApp } = require('ilp-connector')
  const app = createApp(JSON.parse(configJson))
  await app.listen()
  ready({})
}

async function receiver (url, secretHex) {
  const secret = Buffer.from(secretHex, 'hex')
  const plugin = new BtpPlugin({ server: url })
  let address = null
  plugin.registerDataHandler(async (data) => {
    const prepare = IlpPacket.deserializeIlpPrepare(data)
    const fulfillment = hmac(secret, prepare.data)
    if (!sha256(fulfillment).equals(prepare.executionCondition)) {
      return IlpPacket.serializeIlpReject({
        code: 'F05',
        triggeredBy: address || '',
        message: 'wrong condition',
        data: Buffer.alloc(0)
      })
    }
    return IlpPacket.serializeIlpFulfill({ fulfillment, data: Buffer.alloc(0) })
  })
  await plugin.connect()
  const info = await Ildcp.fetch(plugin.sendData.bind(plugin))
  address = info.clientAddress
  ready({ address })
}

async function sendOne (plugin, secret, destination, amount) {
  const nonce = crypto.randomBytes(16)
  const condition = sha256(hmac(secret, nonce))
  const prepare = IlpPacket.serializeIlpPrepare({
    amount,
    executionCondition: condition,
    expiresAt: new Date(Date.now() + EXPIRY_MS),
    destination,
    data: nonce
  })
  const reply = IlpPacket.deserializeIlpPacket(await plugin.sendData(prepare))
  if (reply.type === IlpPacket.Type.TYPE_ILP_FULFILL) {
    if (!sha256(reply.data.fulfillment).equals(condition)) return 'bad-fulfillment'
    return null
  }
  if (reply.type === IlpPacket.Type.TYPE_ILP_REJECT) {
    return `${reply.data.code} ${reply.data.message}`.trim()
  }
  return 'unexpected-reply'
}

async function run (plugin, secret, command) {
  const { destination, payments, amount } = command
  const inFlight = Math.max(1, command.in_flight)
  const latencies = []
  const reasons = {}
  let failed = 0
  let next = 0
  const started = process.hrtime.bigint()
  async function worker () {
    while (next < payments) {
      next += 1
      const t0 = process.hrtime.bigint()
      let reason
      try {
        reason = await sendOne(plugin, secret, destination, amount)
      } catch (err) {
        reason = String(err && err.message ? err.message : err)
      }
      if (reason === null) {
        latencies.push(Number(process.hrtime.bigint() - t0) / 1e6)
      } else {
        failed += 1
        reasons[reason] = (reasons[reason] || 0) + 1
      }
    }
  }
  const workers = []
  for (let i = 0; i < inFlight; i++) workers.push(worker())
  await Promise.all(workers)
  const seconds = Number(process.hrtime.bigint() - started) / 1e9
  return { seconds, latencies_ms: latencies, failed, reasons }
}

async function sender (url, secretHex) {
  const secret = Buffer.from(secretHex, 'hex')
  const plugin = new BtpPlugin({ server: url })
  plugin.registerDataHandler(async () =>
    IlpPacket.serializeIlpReject({
      code: 'F06',
      triggeredBy: '',
      message: 'the sender receives nothing',
      data: Buffer.alloc(0)
    })
  )
  await plugin.connect()
  const info = await Ildcp.fetch(plugin.sendData.bind(plugin))
  ready({ address: info.clientAddress })
  const lines = readline.createInterface({ input: process.stdin })
  for await (const line of lines) {
    if (!line.trim()) continue
    const result = await run(plugin, secret, JSON.parse(line))
    process.stdout.write(JSON.stringify(result) + '\n')
  }
  await plugin.disconnect()
  process.exit(0)
}

async function main () {
  const [role, ...args] = process.argv.slice(2)
  if (role === 'connector') return connector(...args)
  if (role === 'receiver') return receiver(...args)
  if (role === 'sender') return sender(...args)
  throw new Error(`unknown role ${role}: connector, receiver or sender`)
}

main().catch((err) => {
  process.stderr.write(`ilp_peer: ${err && err.stack ? err.stack : err}\n`)
  process.exit(1)
})
