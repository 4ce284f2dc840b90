#!/usr/bin/env node
// kafkajs session for the exactly-once compat tests (compat/tests/eos_clients.py runs it).
//
// Unlike driver.js (one request, one process) this keeps one producer alive
// across many steps, because a transactional or idempotent producer's state
// (producer id, epoch, sequence numbers) is exactly what is under test, and
// the Python side checks the broker between steps. Protocol: one JSON request
// per stdin line, one JSON answer per stdout line, {ok: true, result} or
// {ok: false, error}; the process exits when stdin closes.
//
//   {op: "producer", brokers, idempotent, transactionalId?}   connect the session's producer
//   {op: "send", topic, messages: [{partition, key, value}]}  one acks=all send; -> [{partition, baseOffset}]
//   {op: "transaction", topic, messages, groupId, offsets: [{partition, offset}], inputTopic, end}
//        one transaction: send, sendOffsets, then end = "commit" | "abort"
//   {op: "consume", brokers, topic, readUncommitted, expect}
//        a fresh group reads the topic from the beginning until it has `expect` records
//        -> [{partition, offset, key, value}]
//
// Keys and values travel as UTF-8 strings: the tests' records are text.
// Set COMPAT_JS_DEBUG=1 for kafkajs debug logs on stderr.
'use strict'

const readline = require('readline')
const { Kafka, logLevel } = require('kafkajs')

const WAIT_MS = Number(process.env.COMPAT_WAIT_S || 60) * 1000

let kafka = null
let producer = null

function connectKafka (brokers) {
  kafka = new Kafka({
    clientId: 'samsa-compat-kafkajs-eos',
    brokers,
    connectionTimeout: 10000,
    requestTimeout: 30000,
    logLevel: process.env.COMPAT_JS_DEBUG ? logLevel.DEBUG : logLevel.ERROR,
    logCreator: () => ({ namespace, log }) => {
      const { message, ...extra } = log
      process.stderr.write(`[kafkajs ${namespace}] ${message} ${JSON.stringify(extra)}\n`)
    }
  })
  return kafka
}

const asMessages = (msgs) => msgs.map((m) => ({ partition: m.partition, key: m.key, value: m.value }))

async function openProducer (req) {
  const k = connectKafka(req.brokers)
  // maxInFlightRequests 1: kafkajs documents idempotence as safe only then.
  producer = k.producer({
    idempotent: req.idempotent,
    transactionalId: req.transactionalId,
    maxInFlightRequests: 1,
    allowAutoTopicCreation: false
  })
  await producer.connect()
  return null
}

async function send (req) {
  const res = await producer.send({ topic: req.topic, acks: -1, messages: asMessages(req.messages) })
  return res.map((r) => ({ partition: r.partition, baseOffset: Number(r.baseOffset), errorCode: r.errorCode }))
}

async function transaction (req) {
  const txn = await producer.transaction()
  try {
    await txn.send({ topic: req.topic, acks: -1, messages: asMessages(req.messages) })
    await txn.sendOffsets({
      consumerGroupId: req.groupId,
      topics: [{
        topic: req.inputTopic,
        partitions: req.offsets.map((o) => ({ partition: o.partition, offset: String(o.offset) }))
      }]
    })
  } catch (e) {
    await txn.abort().catch(() => {})
    throw e
  }
  if (req.end === 'commit') await txn.commit()
  else if (req.end === 'abort') await txn.abort()
  else throw new Error(`transaction end must be commit or abort, not ${req.end}`)
  return null
}

async function consume (req) {
  const consumer = (kafka || connectKafka(req.brokers)).consumer({
    groupId: `samsa-compat-eos-${process.pid}-${Date.now()}`,
    readUncommitted: req.readUncommitted,
    retry: { retries: 2, initialRetryTime: 100 }
  })
  const got = []
  try {
    await consumer.connect()
    await consumer.subscribe({ topics: [req.topic], fromBeginning: true })
    await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out with ${got.length} of ${req.expect} records`)), WAIT_MS)
      const finish = (e) => { clearTimeout(timer); e ? reject(e) : resolve() }
      consumer.on(consumer.events.CRASH, (e) => finish(new Error(`consumer crashed: ${e.payload.error && e.payload.error.stack}`)))
      consumer.run({
        autoCommit: false,
        eachMessage: async ({ partition, message: m }) => {
          got.push({
            partition,
            offset: Number(m.offset),
            key: m.key == null ? null : m.key.toString(),
            value: m.value == null ? null : m.value.toString()
          })
          if (got.length >= req.expect) finish()
        }
      }).catch(finish)
    })
  } finally {
    await consumer.disconnect().catch(() => {})
  }
  return got
}

const OPS = { producer: openProducer, send, transaction, consume }

async function main () {
  const lines = readline.createInterface({ input: process.stdin, crlfDelay: Infinity })
  for await (const line of lines) {
    if (!line.trim()) continue
    let answer
    try {
      const req = JSON.parse(line)
      const op = OPS[req.op]
      if (!op) throw new Error(`unknown op ${req.op}`)
      answer = { ok: true, result: await op(req) }
    } catch (e) {
      answer = { ok: false, error: `${e && e.name}: ${e && e.message}`, type: e && e.type, stack: e && e.stack }
    }
    await new Promise((resolve, reject) =>
      process.stdout.write(JSON.stringify(answer) + '\n', (err) => (err ? reject(err) : resolve())))
  }
  if (producer) await producer.disconnect().catch(() => {})
}

main().then(() => process.exit(0), (e) => {
  process.stderr.write(`eos.js: ${e && e.stack ? e.stack : e}\n`)
  process.exit(1)
})
