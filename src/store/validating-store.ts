/**
 * The store's API edge. `withValidation(backend)` checks every argument before the backend sees
 * it, so bad input gets the same coded error on every engine and never reaches stored data.
 * Backends may therefore assume well-formed input.
 */
import { ClosedError } from '../errors.js';
import {
  checkBoolean,
  checkDuration,
  checkEnum,
  checkFunction,
  checkInt,
  checkName,
  checkOptions,
  checkSignal,
  checkSize,
  checkString,
  invalid,
} from '../validate.js';
import { utf8Length } from './keys.js';
import type {
  ChangesQuery,
  ClaimRequest,
  Compare,
  DeleteOptions,
  ItemError,
  ItemState,
  ListQuery,
  NewItem,
  PutOptions,
  RangeOptions,
  RenewEntry,
  SettleOp,
  Store,
  SweepOptions,
  TxnOp,
  TxnRequest,
  WatchOptions,
} from './port.js';

const ITEM_ID = /^[A-Za-z0-9_-]{1,128}$/;
const INT32_MIN = -2147483648;
const INT32_MAX = 2147483647;
const MAX_BATCH = 100_000;
const STATES: readonly ItemState[] = ['pending', 'claimed', 'running', 'completed', 'resolving'];

export const VALIDATED = Symbol.for('rota.store.validated');

function checkKey(field: string, key: unknown, maxBytes: number, allowEmpty = false): string {
  const k = checkString(field, key);
  if (k.length === 0 && !allowEmpty) invalid(field, 'must not be empty');
  if (k.includes('\u0000')) invalid(field, 'must not contain NUL');
  if (!k.isWellFormed()) invalid(field, 'must be well-formed Unicode');
  if (utf8Length(k) > maxBytes) invalid(field, `must be at most ${maxBytes} UTF-8 bytes`);
  return k;
}

function checkValue(field: string, value: unknown, maxBytes: number): Uint8Array {
  if (!(value instanceof Uint8Array)) invalid(field, 'must be a Uint8Array');
  checkSize(field, value.byteLength, maxBytes);
  return value;
}

function checkLeaseId(field: string, id: unknown): string {
  const s = checkString(field, id);
  if (s.length === 0 || s.length > 64) invalid(field, 'must be a lease id returned by grant()');
  return s;
}

function checkRevision(field: string, value: unknown): number {
  return checkInt(field, value, 0);
}

function checkText(field: string, value: unknown, maxBytes: number): string {
  const s = checkString(field, value);
  checkSize(field, utf8Length(s), maxBytes);
  return s;
}

function checkItemId(field: string, value: unknown): string {
  const id = checkString(field, value);
  if (!ITEM_ID.test(id)) invalid(field, 'must match ^[A-Za-z0-9_-]{1,128}$');
  return id;
}

function checkError(field: string, value: unknown): ItemError {
  const e = checkOptions(field, value as ItemError, ['code', 'message']) as ItemError;
  checkString(`${field}.code`, e.code);
  checkString(`${field}.message`, e.message);
  return e;
}

function checkBatch<T>(field: string, value: unknown, min = 1): T[] {
  if (!Array.isArray(value)) invalid(field, 'must be an array');
  if (value.length < min) invalid(field, `must have at least ${min} entr${min === 1 ? 'y' : 'ies'}`);
  if (value.length > MAX_BATCH) invalid(field, `must have at most ${MAX_BATCH} entries`);
  return value as T[];
}

/** Wrap a backend so that every call is validated first and calls after close() fail with ROTA_CLOSED. */
export function withValidation(backend: Store): Store {
  if ((backend as unknown as Record<symbol, unknown>)[VALIDATED]) return backend;
  const caps = backend.capabilities;
  const maxKey = caps.maxKeyBytes;
  const maxValue = caps.maxValueBytes;
  let closed = false;
  const open = () => {
    if (closed) throw new ClosedError('the store was closed');
  };
  const checkCompare = (c: Compare, i: number): void => {
    const field = `compare[${i}]`;
    checkOptions(field, c, ['key', 'target', 'op', 'value']);
    checkKey(`${field}.key`, c.key, maxKey);
    const target = checkEnum(`${field}.target`, c.target, [
      'version',
      'createRevision',
      'modRevision',
      'value',
    ]);
    if (target === 'value') {
      checkEnum(`${field}.op`, c.op, ['==', '!=']);
      checkValue(`${field}.value`, c.value, maxValue);
    } else {
      checkEnum(`${field}.op`, c.op, ['==', '!=', '<', '>']);
      checkRevision(`${field}.value`, c.value);
    }
  };

  const checkOp = (op: TxnOp, field: string): void => {
    if (op === null || typeof op !== 'object') invalid(field, 'must be an op object');
    switch (op.type) {
      case 'get':
        checkOptions(field, op, ['type', 'key']);
        checkKey(`${field}.key`, op.key, maxKey);
        break;
      case 'range':
        checkOptions(field, op, ['type', 'prefix', 'limit']);
        checkKey(`${field}.prefix`, op.prefix, maxKey, true);
        if (op.limit !== undefined) checkInt(`${field}.limit`, op.limit, 1);
        break;
      case 'put':
        checkOptions(field, op, ['type', 'key', 'value', 'lease']);
        checkKey(`${field}.key`, op.key, maxKey);
        checkValue(`${field}.value`, op.value, maxValue);
        if (op.lease !== undefined) checkLeaseId(`${field}.lease`, op.lease);
        break;
      case 'delete':
        checkOptions(field, op, ['type', 'key', 'prefix']);
        checkKey(`${field}.key`, op.key, maxKey, op.prefix === true);
        if (op.prefix !== undefined) checkBoolean(`${field}.prefix`, op.prefix);
        break;
      default:
        invalid(`${field}.type`, "must be 'get', 'range', 'put' or 'delete'");
    }
  };

  const checkBranch = (ops: unknown, field: string): void => {
    if (!Array.isArray(ops)) invalid(field, 'must be an array of ops');
    ops.forEach((op, i) => {
      checkOp(op as TxnOp, `${field}[${i}]`);
    });
    // A branch may not write one key twice (etcd refuses it; the result would be ambiguous).
    const writes = (ops as TxnOp[]).filter((op) => op.type === 'put' || op.type === 'delete');
    for (let i = 0; i < writes.length; i++) {
      for (let j = i + 1; j < writes.length; j++) {
        const a = writes[i] as TxnOp & { key: string; prefix?: boolean };
        const b = writes[j] as TxnOp & { key: string; prefix?: boolean };
        const overlap =
          a.key === b.key ||
          (a.type === 'delete' && a.prefix === true && b.key.startsWith(a.key)) ||
          (b.type === 'delete' && b.prefix === true && a.key.startsWith(b.key));
        if (overlap)
          invalid(field, `writes overlapping keys ${JSON.stringify(a.key)} and ${JSON.stringify(b.key)}`);
      }
    }
  };

  const checkNewItem = (item: NewItem, field: string): void => {
    checkOptions(field, item, [
      'id',
      'queue',
      'payload',
      'priority',
      'runAt',
      'delay',
      'maxAttempts',
      'timeout',
      'claimTimeout',
      'deadLetter',
      'completedTtl',
      'failedTtl',
      'dedup',
      'meta',
      'opId',
    ]);
    checkItemId(`${field}.id`, item.id);
    checkName(`${field}.queue`, item.queue);
    checkText(`${field}.payload`, item.payload, maxValue);
    if (item.priority !== undefined) checkInt(`${field}.priority`, item.priority, INT32_MIN, INT32_MAX);
    if (item.runAt !== undefined) checkInt(`${field}.runAt`, item.runAt, 0);
    if (item.delay !== undefined) checkInt(`${field}.delay`, item.delay, 0);
    if (item.maxAttempts !== undefined) checkInt(`${field}.maxAttempts`, item.maxAttempts, 1);
    if (item.timeout != null) checkDuration(`${field}.timeout`, item.timeout);
    if (item.claimTimeout != null) checkDuration(`${field}.claimTimeout`, item.claimTimeout);
    if (item.deadLetter != null) checkName(`${field}.deadLetter`, item.deadLetter);
    if (item.completedTtl !== undefined) checkDuration(`${field}.completedTtl`, item.completedTtl);
    if (item.failedTtl !== undefined) checkDuration(`${field}.failedTtl`, item.failedTtl);
    if (item.dedup != null) {
      checkOptions(`${field}.dedup`, item.dedup, ['key', 'ttl', 'mode']);
      checkName(`${field}.dedup.key`, item.dedup.key);
      if (item.dedup.ttl !== undefined) checkDuration(`${field}.dedup.ttl`, item.dedup.ttl);
      if (item.dedup.mode !== undefined)
        checkEnum(`${field}.dedup.mode`, item.dedup.mode, ['keep', 'replace']);
    }
    if (item.meta != null) checkText(`${field}.meta`, item.meta, maxValue);
    if (item.opId != null) checkString(`${field}.opId`, item.opId);
  };

  const checkSettle = (op: SettleOp, field: string): void => {
    if (op === null || typeof op !== 'object') invalid(field, 'must be a settle op');
    const fenced = ['id', 'token', 'owner'];
    switch (op.op) {
      case 'start':
      case 'resolve':
      case 'unresolve':
        checkOptions(field, op, ['op', ...fenced]);
        break;
      case 'complete':
        checkOptions(field, op, ['op', ...fenced, 'result']);
        if (op.result != null) checkText(`${field}.result`, op.result, maxValue);
        break;
      case 'retry':
        checkOptions(field, op, ['op', ...fenced, 'error', 'retryAt', 'retryIn', 'refundAttempt']);
        if (op.error != null) checkError(`${field}.error`, op.error);
        if (op.retryAt !== undefined) checkInt(`${field}.retryAt`, op.retryAt, 0);
        if (op.retryIn !== undefined) checkInt(`${field}.retryIn`, op.retryIn, 0);
        if (op.refundAttempt !== undefined) checkBoolean(`${field}.refundAttempt`, op.refundAttempt);
        break;
      case 'fail':
        checkOptions(field, op, ['op', ...fenced, 'error']);
        checkError(`${field}.error`, op.error);
        break;
      case 'release':
        checkOptions(field, op, ['op', ...fenced, 'refundAttempt', 'reject']);
        if (op.refundAttempt !== undefined) checkBoolean(`${field}.refundAttempt`, op.refundAttempt);
        if (op.reject !== undefined) {
          checkOptions(`${field}.reject`, op.reject, ['reason', 'maxRejections']);
          checkString(`${field}.reject.reason`, op.reject.reason);
          checkInt(`${field}.reject.maxRejections`, op.reject.maxRejections, 0);
        }
        break;
      case 'cancel':
        checkOptions(field, op, ['op', 'id', 'reason']);
        if (op.reason !== undefined) checkString(`${field}.reason`, op.reason);
        break;
      case 'abort':
        checkOptions(field, op, ['op', 'id', 'error']);
        checkError(`${field}.error`, op.error);
        break;
      default:
        invalid(`${field}.op`, 'is not a known settle op');
    }
    checkItemId(`${field}.id`, op.id);
    if ('token' in op) {
      checkInt(`${field}.token`, op.token, 0);
      checkString(`${field}.owner`, op.owner);
    }
  };

  const store: Store = {
    get capabilities() {
      return caps;
    },
    now: async () => {
      open();
      return backend.now();
    },
    get: async (key) => {
      open();
      return backend.get(checkKey('key', key, maxKey));
    },
    range: async (prefix, options?: RangeOptions) => {
      open();
      checkKey('prefix', prefix, maxKey, true);
      const o = checkOptions('options', options, ['limit', 'startAfter']) as RangeOptions;
      if (o.limit !== undefined) checkInt('options.limit', o.limit, 1);
      if (o.startAfter !== undefined) checkKey('options.startAfter', o.startAfter, maxKey);
      return backend.range(prefix, options);
    },
    put: async (key, value, options?: PutOptions) => {
      open();
      checkKey('key', key, maxKey);
      checkValue('value', value, maxValue);
      const o = checkOptions('options', options, ['lease']) as PutOptions;
      if (o.lease !== undefined) checkLeaseId('options.lease', o.lease);
      return backend.put(key, value, options);
    },
    delete: async (key, options?: DeleteOptions) => {
      open();
      const o = checkOptions('options', options, ['prefix']) as DeleteOptions;
      if (o.prefix !== undefined) checkBoolean('options.prefix', o.prefix);
      checkKey('key', key, maxKey, o.prefix === true);
      return backend.delete(key, options);
    },
    txn: async (request: TxnRequest) => {
      open();
      checkOptions('request', request, ['compare', 'success', 'failure']);
      if (!Array.isArray(request?.compare)) invalid('request.compare', 'must be an array');
      request.compare.forEach(checkCompare);
      checkBranch(request.success, 'request.success');
      if (request.failure !== undefined) checkBranch(request.failure, 'request.failure');
      return backend.txn(request);
    },
    grant: async (ttl) => {
      open();
      return backend.grant(checkDuration('ttl', ttl));
    },
    keepAlive: async (id) => {
      open();
      return backend.keepAlive(checkLeaseId('leaseId', id));
    },
    revoke: async (id) => {
      open();
      return backend.revoke(checkLeaseId('leaseId', id));
    },
    leaseInfo: async (id) => {
      open();
      return backend.leaseInfo(checkLeaseId('leaseId', id));
    },
    watch: (prefix, options?: WatchOptions) => {
      open();
      checkKey('prefix', prefix, maxKey, true);
      const o = checkOptions('options', options, ['fromRevision', 'signal']) as WatchOptions;
      if (o.fromRevision !== undefined) checkInt('options.fromRevision', o.fromRevision, 1);
      checkSignal('options.signal', o.signal);
      return backend.watch(prefix, options);
    },
    compact: async (revision) => {
      open();
      return backend.compact(checkRevision('revision', revision));
    },
    status: async () => {
      open();
      return backend.status();
    },

    enqueue: async (items) => {
      open();
      checkBatch<NewItem>('items', items).forEach((item, i) => {
        checkNewItem(item, `items[${i}]`);
      });
      return backend.enqueue(items);
    },
    claim: async (request: ClaimRequest) => {
      open();
      checkOptions('request', request, [
        'queue',
        'owner',
        'limit',
        'leaseTtl',
        'start',
        'from',
        'ids',
        'park',
      ]);
      checkName('request.queue', request.queue);
      checkName('request.owner', request.owner);
      checkInt('request.limit', request.limit, 1, 10_000);
      checkDuration('request.leaseTtl', request.leaseTtl, 1000);
      if (request.start !== undefined) checkBoolean('request.start', request.start);
      if (request.from !== undefined) checkEnum('request.from', request.from, ['pending', 'completed']);
      if (request.ids !== undefined) {
        const ids = checkBatch<string>('request.ids', request.ids);
        if (ids.length > 10_000) invalid('request.ids', 'must have at most 10000 entries');
        ids.forEach((id, i) => {
          checkItemId(`request.ids[${i}]`, id);
        });
        if (new Set(ids).size !== ids.length) invalid('request.ids', 'must not repeat an id');
      }
      if (request.park !== undefined) {
        checkOptions('request.park', request.park, ['mailbox', 'ttl']);
        checkName('request.park.mailbox', request.park.mailbox);
        checkDuration('request.park.ttl', request.park.ttl, 1);
      }
      return backend.claim(request);
    },
    renew: async (entries, leaseTtl) => {
      open();
      checkBatch<RenewEntry>('entries', entries, 0).forEach((e, i) => {
        checkOptions(`entries[${i}]`, e, ['id', 'token', 'progress']);
        checkItemId(`entries[${i}].id`, e.id);
        checkInt(`entries[${i}].token`, e.token, 0);
        if (e.progress !== undefined) checkText(`entries[${i}].progress`, e.progress, maxValue);
      });
      checkDuration('leaseTtl', leaseTtl, 1000);
      if (entries.length === 0) return [];
      return backend.renew(entries, leaseTtl);
    },
    settle: async (ops) => {
      open();
      checkBatch<SettleOp>('ops', ops, 0).forEach((op, i) => {
        checkSettle(op, `ops[${i}]`);
      });
      if (ops.length === 0) return [];
      return backend.settle(ops);
    },
    getItem: async (id) => {
      open();
      return backend.getItem(checkItemId('id', id));
    },
    listItems: async (query: ListQuery) => {
      open();
      checkOptions('query', query, ['queue', 'state', 'owner', 'limit', 'afterSeq']);
      if (query?.queue !== undefined) checkName('query.queue', query.queue);
      if (query?.state !== undefined) checkEnum('query.state', query.state, STATES);
      if (query?.owner !== undefined) checkName('query.owner', query.owner);
      if (query?.limit !== undefined) checkInt('query.limit', query.limit, 1, 10_000);
      if (query?.afterSeq !== undefined) checkInt('query.afterSeq', query.afterSeq, 0);
      return backend.listItems(query ?? {});
    },
    countItems: async (queue) => {
      open();
      if (queue !== undefined) checkName('queue', queue);
      return backend.countItems(queue);
    },
    changes: async (query: ChangesQuery) => {
      open();
      checkOptions('query', query, ['queue', 'after', 'limit']);
      if (query?.queue !== undefined) checkName('query.queue', query.queue);
      checkInt('query.after', query?.after, 0);
      if (query.limit !== undefined) checkInt('query.limit', query.limit, 1, 10_000);
      return backend.changes(query);
    },
    sweep: async (options?: SweepOptions) => {
      open();
      const o = checkOptions('options', options, [
        'startTimeout',
        'abortGrace',
        'tombstoneTtl',
        'limit',
      ]) as SweepOptions;
      if (o.startTimeout !== undefined) checkDuration('options.startTimeout', o.startTimeout);
      if (o.abortGrace !== undefined) checkInt('options.abortGrace', o.abortGrace, 0);
      if (o.tombstoneTtl !== undefined) checkInt('options.tombstoneTtl', o.tombstoneTtl, 0);
      if (o.limit !== undefined) checkInt('options.limit', o.limit, 1, 100_000);
      return backend.sweep(options);
    },
    subscribe: (queue, listener) => {
      open();
      if (queue !== '*') checkName('queue', queue);
      checkFunction('listener', listener);
      return backend.subscribe(queue, listener);
    },
    close: async () => {
      if (closed) return;
      closed = true;
      await backend.close();
    },
  };
  const handoff = backend.handoff?.bind(backend);
  if (handoff) {
    store.handoff = (listener) => {
      open();
      checkFunction('listener', listener);
      return handoff(listener);
    };
  }
  Object.defineProperty(store, VALIDATED, { value: true });
  // Keep the raw backend reachable for backend-specific test hooks.
  Object.defineProperty(store, 'backend', { value: backend });
  return store;
}
