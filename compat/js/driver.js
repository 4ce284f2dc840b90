#!/usr/bin/env node
// kafkajs driver for samsa's compat suite (compat/tests/clients.py runs it).
//
// Reads one JSON request on stdin, writes one JSON answer on stdout, exits 0;
// on any error prints it to stderr and exits 1. Keys, values and header values
// travel base64-encoded (null stays null) so bytes survive exactly.
//
//   {cmd: "create-topic", brokers, topic, partitions}
//   {cmd: "produce", brokers, topic, codec, messages: [{key, value, headers: [[k, v]], timestamp, partition}]}
//       -> {acks: [{partition, offset}]}  one per message, in order
//   {cmd: "consume", brokers, topic}   (needs consumer groups: kafkajs has no group-less consumer)
//       -> {messages: [{partition, offset, key, value, headers, timestamp}]}
//   {cmd: "offsets", brokers, topic, timestamp?} -> admin.fetchTopicOffsets[ByTimestamp]
//   {cmd: "metadata", brokers, topics} -> admin.fetchTopicMetadata
//   {cmd: "admin", brokers, op, args} -> admin[op](args)
//
// Set COMPAT_JS_DEBUG=1 for kafkajs debug logs (request API versions) on stderr.
'use strict'

const { Kafka, CompressionTypes, CompressionCodecs, Partitioners, logLevel } = require('kafkajs')
const snappy = require('snappy')
const lz4 = require('lz4-napi')
const zstd = require('@mongodb-js/zstd')

// ---- compression codecs (kafkajs ships only gzip) --------------------------

// Kafka's Java client frames snappy the xerial way: a 16-byte header, then
// blocks of [int32 length][raw snappy]. Readers must also accept plain snappy.
const XERIAL_MAGIC = Buffer.from([0x82, 0x53, 0x4e, 0x41, 0x50, 0x50, 0x59, 0x00])
const XERIAL_BLOCK = 32 * 1024

function isXerial (buf) {
  return buf.length >= 16 && buf.subarray(0, 8).equals(XERIAL_MAGIC)
}

const snappyCodec = () => ({
  async compress (encoder) {
    const data = encoder.buffer
    const header = Buffer.alloc(16)
    XERIAL_MAGIC.copy(header, 0)
    header.writeInt32BE(1, 8) // version
    header.writeInt32BE(1, 12) // minimum compatible version
    const parts = [header]
    for (let off = 0; off < data.length; off += XERIAL_BLOCK) {
      const block = snappy.compressSync(data.subarray(off, off + XERIAL_BLOCK))
      const len = Buffer.alloc(4)
      len.writeInt32BE(block.length, 0)
      parts.push(len, block)
    }
    return Buffer.concat(parts)
  },
  async decompress (buf) {
    if (!isXerial(buf)) return snappy.uncompressSync(buf, { asBuffer: true })
    const parts = []
    let off = 16
    while (off < buf.length) {
      const len = buf.readInt32BE(off)
      off += 4
      parts.push(snappy.uncompressSync(buf.subarray(off, off + len), { asBuffer: true }))
      off += len
    }
    return Buffer.concat(parts)
  }
})

const lz4Codec = () => ({
  async compress (encoder) { return lz4.compressFrame(encoder.buffer) },
  async decompress (buf) { return lz4.decompressFrame(buf) }
})

const zstdCodec = () => ({
  async compress (encoder) { return zstd.compress(encoder.buffer, 3) },
  async decompress (buf) { return zstd.decompress(buf) }
})

CompressionCodecs[CompressionTypes.Snappy] = snappyCodec
CompressionCodecs[CompressionTypes.LZ4] = lz4Codec
CompressionCodecs[CompressionTypes.ZSTD] = zstdCodec

const CODECS = {
  none: CompressionTypes.None,
  gzip: CompressionTypes.GZIP,
  snappy: CompressionTypes.Snappy,
  lz4: CompressionTypes.LZ4,
  zstd: CompressionTypes.ZSTD
}

// ---- helpers ----------------------------------------------------------------

const b64 = (b) => (b == null ? null : Buffer.from(b).toString('base64'))
const unb64 = (s) => (s == null ? null : Buffer.from(s, 'base64'))

function client (req) {
  return new Kafka({
    clientId: 'samsa-compat-kafkajs',
    brokers: req.brokers,
    connectionTimeout: 10000,
    requestTimeout: 30000,
    retry: { retries: 5, initialRetryTime: 100, maxRetryTime: 2000 },
    logLevel: process.env.COMPAT_JS_DEBUG ? logLevel.DEBUG : logLevel.ERROR,
    logCreator: (level) => ({ namespace, log }) => {
      const { message, ...extra } = log
      process.stderr.write(`[kafkajs ${namespace}] ${message} ${JSON.stringify(extra)}\n`)
    }
  })
}

async function withAdmin (kafka, fn) {
  const admin = kafka.admin()
  await admin.connect()
  try {
    return await fn(admin)
  } finally {
    await admin.disconnect()
  }
}

// ---- commands -----------------------------------------------------------------

async function createTopic (req) {
  const kafka = client(req)
  return withAdmin(kafka, async (admin) => {
    const created = await admin.createTopics({
      topics: [{ topic: req.topic, numPartitions: req.partitions, replicationFactor: 1 }],
      waitForLeaders: true,
      timeout: req.timeoutMs
    })
    const md = await admin.fetchTopicMetadata({ topics: [req.topic] })
    return { created, partitions: md.topics[0].partitions.length }
  })
}

async function produce (req) {
  const kafka = client(req)
  const codec = CODECS[req.codec || 'none']
  if (codec === undefined) throw new Error(`unknown codec ${req.codec}`)
  // kafkajs picks partitions inside send() and does not say which; run its own
  // default partitioner here so every message's partition (and offset) is known.
  const partitionMetadata = await withAdmin(kafka, async (admin) =>
    (await admin.fetchTopicMetadata({ topics: [req.topic] })).topics[0].partitions)
  const partitioner = Partitioners.DefaultPartitioner()
  const messages = req.messages.map((m) => {
    const msg = { key: unb64(m.key), value: unb64(m.value) }
    if (m.headers && m.headers.length) {
      msg.headers = {}
      for (const [k, v] of m.headers) msg.headers[k] = unb64(v)
    }
    if (m.timestamp != null) msg.timestamp = m.timestamp
    msg.partition = m.partition != null ? m.partition : partitioner({ topic: req.topic, partitionMetadata, message: msg })
    return msg
  })

  const producer = kafka.producer({ allowAutoTopicCreation: false, idempotent: false })
  await producer.connect()
  const acks = []
  try {
    const chunk = req.chunk || 1000
    for (let start = 0; start < messages.length; start += chunk) {
      const batch = messages.slice(start, start + chunk)
      const res = await producer.send({ topic: req.topic, acks: -1, compression: codec, messages: batch })
      const base = {}
      for (const r of res) {
        if (r.errorCode !== 0) throw new Error(`produce error ${r.errorCode} on partition ${r.partition}`)
        base[r.partition] = Number(r.baseOffset)
      }
      // One send = one batch per partition, in message order: offsets follow.
      const seen = {}
      for (const m of batch) {
        const i = seen[m.partition] || 0
        seen[m.partition] = i + 1
        if (base[m.partition] === undefined) throw new Error(`no ack for partition ${m.partition}`)
        acks.push({ partition: m.partition, offset: base[m.partition] + i })
      }
    }
  } finally {
    await producer.disconnect()
  }
  return { acks }
}

async function consume (req) {
  const kafka = client(req)
  const high = await withAdmin(kafka, (admin) => admin.fetchTopicOffsets(req.topic))
  const need = {}
  for (const p of high) if (Number(p.high) > Number(p.low)) need[p.partition] = Number(p.high)
  const messages = []
  const consumer = kafka.consumer({
    groupId: req.groupId || `samsa-compat-${process.pid}-${Date.now()}`,
    retry: { retries: 2, initialRetryTime: 100 },
    maxBytesPerPartition: 4 * 1024 * 1024
  })
  let fail
  const failed = new Promise((resolve, reject) => { fail = reject })
  consumer.on(consumer.events.CRASH, (e) => fail(new Error(`consumer crashed: ${e.payload.error && e.payload.error.stack}`)))
  let done
  const finished = new Promise((resolve) => { done = resolve })
  const check = () => { if (Object.keys(need).length === 0) done() }
  check()
  const timer = setTimeout(() => fail(new Error(`timed out; still waiting for partitions ${JSON.stringify(need)}`)), req.timeoutMs)
  try {
    await consumer.connect()
    await consumer.subscribe({ topics: [req.topic], fromBeginning: true })
    await consumer.run({
      autoCommit: false,
      eachBatch: async ({ batch }) => {
        for (const m of batch.messages) {
          const headers = []
          for (const [k, v] of Object.entries(m.headers || {})) {
            for (const one of Array.isArray(v) ? v : [v]) headers.push([k, b64(one)])
          }
          messages.push({
            partition: batch.partition,
            offset: Number(m.offset),
            key: b64(m.key),
            value: b64(m.value),
            headers,
            timestamp: Number(m.timestamp)
          })
          if (need[batch.partition] !== undefined && Number(m.offset) + 1 >= need[batch.partition]) {
            delete need[batch.partition]
          }
        }
        check()
      }
    })
    await Promise.race([finished, failed])
  } finally {
    clearTimeout(timer)
    await consumer.disconnect().catch(() => {})
  }
  return { messages }
}

async function offsets (req) {
  const kafka = client(req)
  return withAdmin(kafka, async (admin) =>
    req.timestamp != null
      ? admin.fetchTopicOffsetsByTimestamp(req.topic, req.timestamp)
      : admin.fetchTopicOffsets(req.topic))
}

async function metadata (req) {
  const kafka = client(req)
  return withAdmin(kafka, (admin) => admin.fetchTopicMetadata({ topics: req.topics }))
}

// Any admin method, e.g. {cmd: "admin", op: "createPartitions", args: {topicPartitions: [...]}}
async function adminOp (req) {
  const kafka = client(req)
  return withAdmin(kafka, async (admin) => {
    if (typeof admin[req.op] !== 'function') throw new Error(`no admin.${req.op}`)
    const res = await admin[req.op](req.args)
    return res === undefined ? null : res
  })
}

const COMMANDS = { 'create-topic': createTopic, produce, consume, offsets, metadata, admin: adminOp }

async function main () {
  const chunks = []
  for await (const c of process.stdin) chunks.push(c)
  const req = JSON.parse(Buffer.concat(chunks).toString('utf8'))
  const cmd = COMMANDS[req.cmd]
  if (!cmd) throw new Error(`unknown cmd ${req.cmd}`)
  const out = await cmd(req)
  // stdout is a pipe: exit only once everything is written (large answers).
  await new Promise((resolve, reject) => process.stdout.write(JSON.stringify(out), (e) => (e ? reject(e) : resolve())))
}

main().then(() => process.exit(0), (e) => {
  process.stderr.write(`driver.js: ${e && e.stack ? e.stack : e}\n`)
  process.exit(1)
})
