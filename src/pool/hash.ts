/**
 * The placement hash (DESIGN.md decision 8): a fast, non-cryptographic 64-bit hash written on
 * 32-bit halves, so it needs no BigInt.
 *
 * - `hash64(text)` is 64-bit FNV-1a over the UTF-8 bytes of `text`, followed by MurmurHash3's
 *   64-bit finalizer `fmix64` (FNV-1a alone mixes its last bytes poorly).
 * - The rendezvous score of a (worker, key) pair is
 *   `fmix64(hash64(workerId ‖ 0x00) XOR hash64(key))`, read as its top 53 bits (so scores compare
 *   exactly with `<`; ties are broken by worker id). Both inner hashes are computed once (per
 *   worker, per key), so a pair costs one finalizer: a full rebalance of 10 000 keys over 50
 *   workers is 500 000 finalizer runs, about 20 ms (bench/pool-placement.ts).
 *
 * `fmix64` is a bijection with full avalanche, so for a fixed key the scores of distinct workers
 * behave as independent random values: each worker is first for ~1/n of the keys, a leaver's keys
 * spread evenly over the others, and a newcomer takes ~1/(n+1) of the keys from everyone.
 */

/** A 64-bit value as two unsigned 32-bit halves. */
export interface Hash64 {
  readonly hi: number;
  readonly lo: number;
}

const encoder = new TextEncoder();
let buffer = new Uint8Array(1024);

/** UTF-8 bytes of `text` in a reused buffer, with room for one more byte; returns the length. */
function encode(text: string): number {
  if (text.length * 3 + 1 > buffer.length) buffer = new Uint8Array(text.length * 3 + 1);
  return encoder.encodeInto(text, buffer).written;
}

/** Scratch for the two halves of a finished hash (module-level `let`s would cost a TDZ check per access). */
const out = new Uint32Array(2);

/**
 * MurmurHash3 fmix64 of (hi, lo) into `out`. Each 64-bit multiply by a constant takes the low
 * 32×32 product on 16-bit pieces (exact in doubles) and the cross terms (which only reach the high
 * half) with Math.imul.
 */
function fmix64(hi: number, lo: number): void {
  // h ^= h >>> 33
  lo = (lo ^ (hi >>> 1)) >>> 0;
  // h *= 0xff51afd7ed558ccd
  let a0 = lo & 0xffff;
  let a1 = lo >>> 16;
  let p00 = a0 * 0x8ccd;
  let p01 = a0 * 0xed55;
  let p10 = a1 * 0x8ccd;
  let mid = (p00 >>> 16) + (p01 & 0xffff) + (p10 & 0xffff);
  let mlo = ((mid << 16) | (p00 & 0xffff)) >>> 0;
  let mhi = a1 * 0xed55 + (p01 >>> 16) + (p10 >>> 16) + (mid >>> 16);
  hi = (mhi + Math.imul(hi, 0xed558ccd) + Math.imul(lo, 0xff51afd7)) >>> 0;
  lo = mlo;
  lo = (lo ^ (hi >>> 1)) >>> 0;
  // h *= 0xc4ceb9fe1a85ec53
  a0 = lo & 0xffff;
  a1 = lo >>> 16;
  p00 = a0 * 0xec53;
  p01 = a0 * 0x1a85;
  p10 = a1 * 0xec53;
  mid = (p00 >>> 16) + (p01 & 0xffff) + (p10 & 0xffff);
  mlo = ((mid << 16) | (p00 & 0xffff)) >>> 0;
  mhi = a1 * 0x1a85 + (p01 >>> 16) + (p10 >>> 16) + (mid >>> 16);
  hi = (mhi + Math.imul(hi, 0x1a85ec53) + Math.imul(lo, 0xc4ceb9fe)) >>> 0;
  lo = mlo;
  out[1] = lo ^ (hi >>> 1);
  out[0] = hi;
}

/** fmix64 of (hi, lo) read as its top 53 bits, so scores compare exactly as doubles. */
function fmixScore(hi: number, lo: number): number {
  fmix64(hi, lo);
  return (out[0] as number) * 0x200000 + ((out[1] as number) >>> 11);
}

/**
 * 64-bit FNV-1a over `buffer[0..length)`, finished with fmix64. Each FNV step is
 * `h = (h ^ byte) * 0x100000001b3` mod 2^64; the prime is 2^40 + 0x1b3, so the product is
 * `h·0x1b3 + (h << 40)`, computed on 16-bit pieces of the low half so every partial product is
 * exact.
 */
function fnvFinished(length: number): Hash64 {
  let hi = 0xcbf29ce4;
  let lo = 0x84222325;
  for (let i = 0; i < length; i++) {
    const x = (lo ^ (buffer[i] as number)) >>> 0;
    const p0 = (x & 0xffff) * 0x1b3;
    const p1 = (x >>> 16) * 0x1b3;
    lo = (p0 + (p1 << 16)) >>> 0;
    hi = (Math.imul(hi, 0x1b3) + ((p1 + (p0 >>> 16)) >>> 16) + (x << 8)) >>> 0;
  }
  fmix64(hi, lo);
  return { hi: out[0] as number, lo: out[1] as number };
}

/** hash64 of the UTF-8 bytes of `text`. */
export function hash64(text: string): Hash64 {
  return fnvFinished(encode(text));
}

/** hash64(`workerId` ‖ 0x00): a worker's side of its scores, computed once per worker. */
export function workerHash(workerId: string): Hash64 {
  const length = encode(workerId);
  buffer[length] = 0;
  return fnvFinished(length + 1);
}

/** The rendezvous score of a worker hash and a key hash: the top 53 bits of fmix64(w XOR k). */
export function pairScore(worker: Hash64, key: Hash64): number {
  return fmixScore((worker.hi ^ key.hi) >>> 0, (worker.lo ^ key.lo) >>> 0);
}

/** Scores of one key hash for every worker hash, written into `out`. */
export function scoresInto(workers: readonly Hash64[], key: Hash64, scores: Float64Array): void {
  const kHi = key.hi;
  const kLo = key.lo;
  for (let w = 0; w < workers.length; w++) {
    const h = workers[w] as Hash64;
    scores[w] = fmixScore((h.hi ^ kHi) >>> 0, (h.lo ^ kLo) >>> 0);
  }
}

/** The rendezvous score of (`workerId`, `key`). */
export function score(workerId: string, key: string): number {
  return pairScore(workerHash(workerId), hash64(key));
}

/** A 64-bit hash as 16 hex digits (tests and docs). */
export function toHex(h: Hash64): string {
  return h.hi.toString(16).padStart(8, '0') + h.lo.toString(16).padStart(8, '0');
}
