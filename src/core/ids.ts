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

/** Make sure `n` unread random bytes are left in the pool at `poolAt`. */
function reserveRandom(n: number): void {
  if (poolAt + n > pool.length) {
    pool = randomBytes(POOL_BYTES);
    poolAt = 0;
  }
}

// Two hex digits per byte value: ids are built from table lookups, a third of the cost of
// Number#toString, padStart, Buffer#toString('hex') and slicing.
const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

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
    reserveRandom(2);
    counter = pool.readUInt16BE(poolAt) & 0x7ff;
    poolAt += 2;
  }
  const hi = Math.floor(lastMs / 0x1_0000_0000) & 0xffff;
  const lo = lastMs >>> 0;
  // Eight random bytes read in place (a subarray per id cost more than the lookups).
  reserveRandom(8);
  const p = pool;
  const at = poolAt;
  poolAt += 8;
  return (
    (HEX[hi >>> 8] as string) +
    HEX[hi & 0xff] +
    HEX[lo >>> 24] +
    HEX[(lo >>> 16) & 0xff] +
    '-' +
    HEX[(lo >>> 8) & 0xff] +
    HEX[lo & 0xff] +
    '-' +
    HEX[0x70 | (counter >>> 8)] +
    HEX[counter & 0xff] +
    '-' +
    HEX[((p[at] as number) & 0x3f) | 0x80] +
    HEX[p[at + 1] as number] +
    '-' +
    HEX[p[at + 2] as number] +
    HEX[p[at + 3] as number] +
    HEX[p[at + 4] as number] +
    HEX[p[at + 5] as number] +
    HEX[p[at + 6] as number] +
    HEX[p[at + 7] as number]
  );
}
