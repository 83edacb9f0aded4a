/** Identifiers: node ids, op ids, time-ordered ids. */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';

/** Random lowercase hex of `bytes` bytes. */
export function randomHex(bytes: number): string {
  return randomBytes(bytes).toString('hex');
}

/** A random id for an operation, embedded in writes to recognise our own after an ambiguous failure. */
export function opId(): string {
  return randomHex(8);
}

/** The default node id: `${hostname}-${pid}-${6 hex}` (cluster.md §5, CL-31). */
export function defaultNodeId(): string {
  const host = hostname().replace(/\s+/g, '-') || 'host';
  return `${host}-${process.pid}-${randomHex(3)}`;
}

let lastMs = 0;
let counter = 0;

// Random bytes for ids come from a pool refilled 4 KiB at a time: one crypto call per ~400 ids
// instead of one or two per id (bulk enqueues generate thousands of ids at once).
const POOL_BYTES = 4096;
let pool = Buffer.alloc(0);
let poolAt = 0;

function randomChunk(n: number): Buffer {
  if (poolAt + n > pool.length) {
    pool = randomBytes(POOL_BYTES);
    poolAt = 0;
  }
  const chunk = pool.subarray(poolAt, poolAt + n);
  poolAt += n;
  return chunk;
}

/**
 * A UUIDv7: time-ordered (48-bit ms timestamp), then a 12-bit counter for ids made within the
 * same millisecond, then random bits. Sorts by creation time as a string.
 */
export function uuidv7(nowMs: number = Date.now()): string {
  if (nowMs <= lastMs) {
    counter = (counter + 1) & 0xfff;
    if (counter === 0) lastMs += 1;
  } else {
    lastMs = nowMs;
    counter = randomChunk(2).readUInt16BE(0) & 0x7ff;
  }
  const ms = lastMs;
  const rand = randomChunk(8);
  const hex = ms.toString(16).padStart(12, '0');
  const a = ((0x7 << 12) | counter).toString(16).padStart(4, '0');
  rand[0] = ((rand[0] as number) & 0x3f) | 0x80;
  const r = rand.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${a}-${r.slice(0, 4)}-${r.slice(4, 16)}`;
}
