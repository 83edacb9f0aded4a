/** Conversions between Rota's values and etcd's wire values (keys, key-values, lease ids). */
import type { IKeyValue } from 'etcd3';
import { toSafeInteger } from '../keys.js';
import type { KeyValue } from '../port.js';

/** UTF-8 bytes of a string as a Buffer (what the etcd client sends). */
export const bytes = (s: string): Buffer => Buffer.from(s, 'utf8');

/** The smallest key greater than every key starting with `prefix` (etcd's prefix range end). */
export function prefixEnd(prefix: Buffer): Buffer {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if ((end[i] as number) < 0xff) {
      end[i] = (end[i] as number) + 1;
      return end.subarray(0, i + 1);
    }
  }
  // Every byte is 0xff: the range runs to the end of the keyspace ("\0" in etcd's convention).
  return Buffer.from([0]);
}

/** The smallest key strictly greater than `key`. */
export const keyAfter = (key: Buffer): Buffer => Buffer.concat([key, Buffer.from([0])]);

/** etcd int64 as a safe JavaScript number. */
export const num = (value: string | number | undefined, what = 'revision'): number =>
  toSafeInteger(value ?? 0, what);

const LEASE_ID = /^[0-9a-f]{1,16}$/;
const INT64_MAX = (1n << 63n) - 1n;

/** Rota lease id (lowercase hex, as etcdctl prints it) → etcd's decimal id, or null when it cannot exist. */
export function leaseToWire(id: string): string | null {
  if (!LEASE_ID.test(id)) return null;
  const n = BigInt(`0x${id}`);
  return n > 0n && n <= INT64_MAX ? n.toString() : null;
}

/** etcd's decimal lease id → Rota's hex id; null for "no lease" (0). */
export function leaseFromWire(id: string | number | undefined): string | null {
  if (id === undefined || id === null) return null;
  const n = BigInt(id);
  return n === 0n ? null : n.toString(16);
}

/** An etcd key-value as a port KeyValue, with the first `strip` key bytes (the store prefix) removed. */
export function toKeyValue(kv: IKeyValue, strip: number): KeyValue {
  return {
    key: kv.key.subarray(strip).toString('utf8'),
    value: new Uint8Array(kv.value),
    createRevision: num(kv.create_revision),
    modRevision: num(kv.mod_revision),
    version: num(kv.version, 'version'),
    lease: leaseFromWire(kv.lease),
  };
}
