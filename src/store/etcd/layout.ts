/**
 * Where a store's data lives under its prefix P:
 *
 * | key | holds |
 * |---|---|
 * | `P k/<key>` | the user's KV keys |
 * | `P m/rev` | revision marker: written by every KV write of this store, so its modRevision is the store's revision |
 * | `P m/compact` | this store's compaction revision (decimal) |
 * | `P q/...` | the queue (see `queue/keys.ts`) |
 */
import { bytes, prefixEnd } from './codec.js';

export class Layout {
  /** The store prefix, e.g. `rota/`. */
  readonly root: string;
  readonly kvPrefix: Buffer;
  readonly kvEnd: Buffer;
  readonly marker: Buffer;
  readonly compact: Buffer;
  /** Prefix of every queue key (a string: queue keys are built by concatenation). */
  readonly queue: string;

  constructor(root: string) {
    this.root = root;
    this.kvPrefix = bytes(`${root}k/`);
    this.kvEnd = prefixEnd(this.kvPrefix);
    this.marker = bytes(`${root}m/rev`);
    this.compact = bytes(`${root}m/compact`);
    this.queue = `${root}q/`;
  }

  /** The etcd key of a user key. */
  userKey(key: string): Buffer {
    return Buffer.concat([this.kvPrefix, bytes(key)]);
  }
}
