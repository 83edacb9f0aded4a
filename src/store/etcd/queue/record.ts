/**
 * Item records as stored in etcd. Two fields come from etcd instead of the JSON:
 * - `changeSeq` is the modRevision of the record key (the revision of the item's latest write);
 * - a claim does not know its own revision before it commits, so it stores `token: "self"`,
 *   meaning "the modRevision of this record". The next write of the record (renew, settle)
 *   stores the number, so the token of a claim is the revision that claimed it and only grows.
 */
import type { IKeyValue } from 'etcd3';
import { StoreCorruptError } from '../../../errors.js';
import type { ItemRecord } from '../../queue-model.js';
import { num } from '../codec.js';

/** Placeholder changeSeq passed to the queue model; a claim copies it into `token`. */
export const PENDING_REVISION = -1;

type Stored = Omit<ItemRecord, 'changeSeq' | 'token'> & { token: number | null | 'self' };

/** The JSON bytes of a record to write. */
export function encodeRecord(rec: ItemRecord): Buffer {
  const { changeSeq: _changeSeq, token, ...rest } = rec;
  const stored: Stored = { ...rest, token: token === PENDING_REVISION ? 'self' : token };
  return Buffer.from(JSON.stringify(stored), 'utf8');
}

/** A stored record with the etcd-derived fields filled in. */
export function decodeRecord(kv: IKeyValue): ItemRecord {
  let stored: Stored;
  try {
    stored = JSON.parse(kv.value.toString('utf8')) as Stored;
  } catch (cause) {
    throw new StoreCorruptError(`queue record ${kv.key.toString()} is not JSON`, { cause });
  }
  const modRevision = num(kv.mod_revision);
  return {
    ...stored,
    token: stored.token === 'self' ? modRevision : stored.token,
    changeSeq: modRevision,
  } as ItemRecord;
}

/** An observed record: its modRevision (0 when absent) and content. */
export interface Observed {
  mod: number;
  rec: ItemRecord | null;
}

export const ABSENT: Observed = Object.freeze({ mod: 0, rec: null });
