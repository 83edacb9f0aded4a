/**
 * The etcd requests behind the KV half of the port. Each builder returns one etcd txn; the
 * revision marker (`Layout.marker`) is read first in every branch and written by every branch
 * that writes, which is how a store sharing a cluster with others knows its own revision.
 */
import type { ICompare, IRequestOp, ITxnRequest } from 'etcd3';
import { compareKeys } from '../keys.js';
import type { Compare, CompareOp, TxnOp } from '../port.js';
import { keyAfter, leaseToWire, prefixEnd } from './codec.js';
import type { Layout } from './layout.js';

const EMPTY = Buffer.alloc(0);

const RESULT: Record<CompareOp, ICompare['result']> = {
  '==': 'Equal',
  '!=': 'NotEqual',
  '<': 'Less',
  '>': 'Greater',
};

/** A lease id that cannot exist in etcd: the put fails with "lease not found", like an expired one. */
export class UnknownLeaseId extends Error {}

function wireLease(lease: string | undefined): string | undefined {
  if (lease === undefined) return undefined;
  const id = leaseToWire(lease);
  if (id === null) throw new UnknownLeaseId(lease);
  return id;
}

export const readMarker = (layout: Layout): IRequestOp => ({ request_range: { key: layout.marker } });
export const writeMarker = (layout: Layout): IRequestOp => ({
  request_put: { key: layout.marker, value: EMPTY },
});

/** `get`: the key and the marker in one snapshot. */
export function getRequest(layout: Layout, key: string): ITxnRequest {
  return { compare: [], success: [{ request_range: { key: layout.userKey(key) } }, readMarker(layout)] };
}

/** `range`: keys under `prefix` (after `startAfter`), plus the marker. */
export function rangeRequest(
  layout: Layout,
  prefix: string,
  limit?: number,
  startAfter?: string,
): ITxnRequest {
  const start = layout.userKey(prefix);
  const from =
    startAfter !== undefined && compareKeys(startAfter, prefix) >= 0
      ? keyAfter(layout.userKey(startAfter))
      : start;
  return {
    compare: [],
    success: [
      { request_range: { key: from, range_end: prefixEnd(start), limit: limit ?? 0 } },
      readMarker(layout),
    ],
  };
}

/** `put`: the key (returning the previous value) and the marker. */
export function putRequest(layout: Layout, key: string, value: Uint8Array, lease?: string): ITxnRequest {
  return {
    compare: [],
    success: [
      {
        request_put: {
          key: layout.userKey(key),
          value: Buffer.from(value),
          lease: wireLease(lease) ?? 0,
          prev_kv: true,
        },
      },
      writeMarker(layout),
    ],
  };
}

function deleteOp(layout: Layout, key: string, prefix: boolean): IRequestOp {
  const k = layout.userKey(key);
  return { request_delete_range: { key: k, ...(prefix ? { range_end: prefixEnd(k) } : {}), prev_kv: true } };
}

function nonEmpty(layout: Layout, key: string, prefix: boolean): ICompare {
  const k = layout.userKey(key);
  return {
    key: k,
    ...(prefix ? { range_end: prefixEnd(k) } : {}),
    target: 'Version',
    result: 'Greater',
    version: 0,
  };
}

/** `delete`: only when something matches (so deleting nothing leaves the revision alone). */
export function deleteRequest(layout: Layout, key: string, prefix: boolean): ITxnRequest {
  return {
    compare: [nonEmpty(layout, key, prefix)],
    success: [deleteOp(layout, key, prefix), writeMarker(layout)],
    failure: [readMarker(layout)],
  };
}

/** One port compare as an etcd compare (absent keys compare as 0 in both). */
export function compareRequest(layout: Layout, c: Compare): ICompare {
  const key = layout.userKey(c.key);
  const result = RESULT[c.op];
  switch (c.target) {
    case 'version':
      return { key, target: 'Version', result, version: c.value };
    case 'createRevision':
      return { key, target: 'Create', result, create_revision: c.value };
    case 'modRevision':
      return { key, target: 'Mod', result, mod_revision: c.value };
    case 'value':
      return { key, target: 'Value', result, value: Buffer.from(c.value) };
  }
}

function opRequest(layout: Layout, op: TxnOp): IRequestOp {
  switch (op.type) {
    case 'get':
      return { request_range: { key: layout.userKey(op.key) } };
    case 'range': {
      const k = layout.userKey(op.prefix);
      return { request_range: { key: k, range_end: prefixEnd(k), limit: op.limit ?? 0 } };
    }
    case 'put':
      return {
        request_put: {
          key: layout.userKey(op.key),
          value: Buffer.from(op.value),
          lease: wireLease(op.lease) ?? 0,
          prev_kv: true,
        },
      };
    case 'delete':
      return deleteOp(layout, op.key, op.prefix ?? false);
  }
}

/**
 * Writes the marker iff one of `deletes` matches a key, judged before the branch runs (etcd
 * evaluates every compare of a txn, nested ones too, against the state before the txn).
 */
function markIfAnyDeletes(layout: Layout, deletes: { key: string; prefix: boolean }[]): IRequestOp {
  let failure: IRequestOp[] = [];
  for (let i = deletes.length - 1; i >= 0; i--) {
    const d = deletes[i] as { key: string; prefix: boolean };
    failure = [
      {
        request_txn: {
          compare: [nonEmpty(layout, d.key, d.prefix)],
          success: [writeMarker(layout)],
          failure,
        },
      },
    ];
  }
  return failure[0] as IRequestOp;
}

/** The layout of a translated branch: where the user's op responses start. */
export interface BranchShape {
  /** Index of the first user op response. */
  offset: number;
  count: number;
  hasPut: boolean;
}

/** One txn branch: marker read, (marker-if-deleting), the user's ops, (marker write). */
export function branchRequest(layout: Layout, ops: TxnOp[]): { ops: IRequestOp[]; shape: BranchShape } {
  const out: IRequestOp[] = [readMarker(layout)];
  const hasPut = ops.some((op) => op.type === 'put');
  const deletes = ops.flatMap((op) =>
    op.type === 'delete' ? [{ key: op.key, prefix: op.prefix ?? false }] : [],
  );
  if (!hasPut && deletes.length > 0) out.push(markIfAnyDeletes(layout, deletes));
  const offset = out.length;
  for (const op of ops) out.push(opRequest(layout, op));
  if (hasPut) out.push(writeMarker(layout));
  return { ops: out, shape: { offset, count: ops.length, hasPut } };
}

/**
 * A compare that etcd cannot express directly: `value !=` on a key that is absent (etcd says
 * false, the port says true). The txn pins the presence of such keys in an outer txn and runs the
 * real one nested inside; if the pins fail the caller re-reads and tries again.
 */
export function pinnedTxnRequest(
  layout: Layout,
  pins: { key: string; present: boolean }[],
  inner: ITxnRequest,
): ITxnRequest {
  return {
    compare: pins.map((p) => ({
      key: layout.userKey(p.key),
      target: 'Version',
      result: p.present ? 'Greater' : 'Equal',
      version: 0,
    })),
    success: [{ request_txn: inner }],
    failure: [],
  };
}

/** Create the marker if it is absent (else read it). */
export function createMarkerRequest(layout: Layout): ITxnRequest {
  return {
    compare: [{ key: layout.marker, target: 'Version', result: 'Equal', version: 0 }],
    success: [writeMarker(layout)],
    failure: [readMarker(layout)],
  };
}

/** Read the marker and this store's compaction revision. */
export function statusRequest(layout: Layout): ITxnRequest {
  return { compare: [], success: [readMarker(layout), { request_range: { key: layout.compact } }] };
}

/** Raise the stored compaction revision from the observed state (`modRevision` 0: absent). */
export function compactRequest(layout: Layout, observedMod: number, revision: number): ITxnRequest {
  return {
    compare: [{ key: layout.compact, target: 'Mod', result: 'Equal', mod_revision: observedMod }],
    success: [{ request_put: { key: layout.compact, value: Buffer.from(String(revision)) } }],
    failure: [],
  };
}
