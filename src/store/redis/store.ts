/**
 * The Redis store: the whole port on one Redis server (or one Redis Cluster slot per prefix).
 * Every multi-key operation is one Lua script (./scripts), so each is atomic and the revision
 * and sequence counters are allocated in commit order; time is the server's TIME everywhere.
 */
import { randomHex } from '../../core/ids.js';
import { InvalidArgumentError } from '../../errors.js';
import { compareKeys, toSafeInteger } from '../keys.js';
import type {
  ChangesQuery,
  ChangesResult,
  ClaimRequest,
  ClaimResult,
  DeleteOptions,
  DeleteResult,
  EnqueueResult,
  GetResult,
  ItemState,
  KeyValue,
  Lease,
  LeaseInfo,
  ListQuery,
  ListResult,
  Mailbox,
  NewItem,
  Outcome,
  PutOptions,
  PutResult,
  QueueCounts,
  QueueItem,
  RangeOptions,
  RangeResult,
  RenewEntry,
  RenewResult,
  SettleOp,
  SettleResult,
  SettleStatus,
  Store,
  StoreCapabilities,
  StoreStatus,
  SweepOptions,
  SweepResult,
  TxnOp,
  TxnOpResult,
  TxnRequest,
  TxnResult,
  WatchEvent,
  WatchOptions,
} from '../port.js';
import { ITEM_DEFAULTS } from '../port.js';
import { storedError } from '../queue-model.js';
import {
  decodeClaimed,
  decodeHead,
  decodeItem,
  decodeKv,
  decodeLiveItem,
  type KvHead,
  optNum,
  optText,
  type RawItem,
  type RawKv,
} from './codec.js';
import type { CallKind, Connection } from './connection.js';
import { LeaseSweeper } from './lease-sweeper.js';
import type { RedisConfig } from './options.js';
import type { ServerFacts } from './safety.js';
import type { Arg, ScriptName, ScriptRunner } from './scripts.js';
import { Wakeups } from './wakeups.js';
import { WatchHub } from './watch-hub.js';

const CODE_STATUS: Record<string, EnqueueResult['status']> = {
  c: 'created',
  d: 'deduplicated',
  r: 'replaced',
};
const COMPARE_TARGET = { value: 'v', createRevision: 'c', modRevision: 'm', version: 'n' } as const;

const text = (value: string | number): string => (typeof value === 'string' ? value : String(value));

const toBuffer = (value: Uint8Array): Buffer => Buffer.from(value.buffer, value.byteOffset, value.byteLength);

/** Two enqueue rows alike (a dedup key makes a row unlike any: each item claims its key). */
function sameRow(a: string[], b: string[]): boolean {
  if (a.length !== b.length || a[5] !== '' || b[5] !== '') return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Text the store keeps must be well-formed Unicode: a lone surrogate cannot round-trip through UTF-8. */
function wellFormed(field: string, value: string | null | undefined): void {
  if (typeof value === 'string' && !value.isWellFormed()) {
    throw new InvalidArgumentError(`${field}: must be well-formed Unicode (Redis stores UTF-8)`, {
      detail: { field },
    });
  }
}

export class RedisStore implements Store {
  readonly capabilities: StoreCapabilities;
  readonly #config: RedisConfig;
  readonly #main: Connection;
  readonly #scripts: ScriptRunner;
  readonly #sweeper: LeaseSweeper;
  readonly #hub: WatchHub;
  readonly #wakeups: Wakeups;
  #closed = false;

  /** `scripts`: loaded by the caller (it knows whether the server runs Redis Functions). */
  constructor(config: RedisConfig, main: Connection, facts: ServerFacts, scripts: ScriptRunner) {
    this.#config = config;
    this.#main = main;
    this.#scripts = scripts;
    this.capabilities = Object.freeze({
      name: 'redis',
      serverClock: true,
      multiProcess: true,
      persistent: facts.persistent,
      maxKeyBytes: 4096,
      maxValueBytes: 1024 * 1024,
      leaseGranularityMs: 1000,
      queueThroughput: 'high',
    });
    this.#sweeper = new LeaseSweeper(async () => (await this.#kv('read', 'kv-status', [])).head);
    this.#wakeups = new Wakeups(
      config,
      (at) => this.#sweeper.learn(at),
      // Grants published before the subscription (or while it was down) were missed: one status
      // read reports the earliest lease expiry and arms the sweeper from it.
      () => void this.#kv('read', 'kv-status', []).catch(() => undefined),
    );
    this.#hub = new WatchHub(config, {
      status: () => this.status(),
      range: (start, end, count) =>
        this.#main.run('read', (r) =>
          r.callBuffer('XRANGE', `${config.base}:events`, start, end, 'COUNT', count),
        ) as Promise<[Buffer, Buffer[]][]>,
      watching: () => this.#wakeups.leases(),
    });
  }

  /** The connection's prefix, e.g. to find this store's keys (`{prefix}:*`). */
  get prefix(): string {
    return this.#config.prefix;
  }

  // -------------------------------------------------------------------------------------------
  // Calls

  #call(kind: CallKind, name: ScriptName, args: Arg[]): Promise<unknown[]> {
    return this.#main.run(kind, (r) => this.#scripts.run(r, name, args)) as Promise<unknown[]>;
  }

  /** A script that replies with one JSON text (cjson.encode): one bulk string for the whole reply. */
  async #callJson(kind: CallKind, name: ScriptName, args: Arg[]): Promise<unknown[]> {
    const text = await this.#main.run(kind, (r) => this.#scripts.run(r, name, args));
    return JSON.parse(text as string) as unknown[];
  }

  /** A KV script: the common header arguments, a binary-safe reply, the head fed to the sweeper. */
  async #kv(kind: CallKind, name: ScriptName, args: Arg[]): Promise<{ head: KvHead; rest: unknown[] }> {
    const full = [this.#config.historyRevisions, this.#config.leaseSweepBatch, ...args];
    const reply = (await this.#main.run(kind, (r) => this.#scripts.runBuffer(r, name, full))) as unknown[];
    const head = decodeHead(reply);
    this.#sweeper.observe(head);
    return { head, rest: reply.slice(3) };
  }

  async now(): Promise<number> {
    const [sec, usec] = (await this.#main.run('read', (r) => r.call('TIME'))) as [string, string];
    return Number(sec) * 1000 + Math.floor(Number(usec) / 1000);
  }

  // -------------------------------------------------------------------------------------------
  // KV

  async get(key: string): Promise<GetResult> {
    const { head, rest } = await this.#kv('read', 'kv-get', [key]);
    return { kv: decodeKv(rest[0] as RawKv | null), revision: head.revision };
  }

  async range(prefix: string, options: RangeOptions = {}): Promise<RangeResult> {
    const startAfter =
      options.startAfter !== undefined && compareKeys(options.startAfter, prefix) >= 0
        ? options.startAfter
        : '';
    const { head, rest } = await this.#kv('read', 'kv-range', [prefix, startAfter, optNum(options.limit)]);
    const kvs = (rest.slice(1) as RawKv[]).map((raw) => decodeKv(raw) as KeyValue);
    return { kvs, more: rest[0] === 1, revision: head.revision };
  }

  async put(key: string, value: Uint8Array, options: PutOptions = {}): Promise<PutResult> {
    const { head, rest } = await this.#kv('write', 'kv-put', [key, toBuffer(value), options.lease ?? '']);
    return { revision: head.revision, prev: decodeKv(rest[0] as RawKv | null) };
  }

  async delete(key: string, options: DeleteOptions = {}): Promise<DeleteResult> {
    const { head, rest } = await this.#kv('write', 'kv-delete', [key, options.prefix ? '1' : '']);
    const prev = (rest.slice(1) as RawKv[]).map((raw) => decodeKv(raw) as KeyValue);
    return { revision: head.revision, deleted: Number(rest[0]), prev };
  }

  async txn(request: TxnRequest): Promise<TxnResult> {
    const args: Arg[] = [request.compare.length];
    for (const c of request.compare) {
      args.push(
        c.key,
        COMPARE_TARGET[c.target],
        c.op,
        c.target === 'value' ? toBuffer(c.value as Uint8Array) : (c.value as number),
      );
    }
    const ops = (list: TxnOp[]) => {
      args.push(list.length);
      for (const op of list) {
        switch (op.type) {
          case 'get':
            args.push('g', op.key, '', '');
            break;
          case 'range':
            args.push('r', op.prefix, '', optNum(op.limit));
            break;
          case 'put':
            args.push('p', op.key, toBuffer(op.value), op.lease ?? '');
            break;
          case 'delete':
            args.push('d', op.key, '', op.prefix ? '1' : '');
            break;
        }
      }
    };
    ops(request.success);
    ops(request.failure ?? []);
    const { head, rest } = await this.#kv('write', 'kv-txn', args);
    const results: TxnOpResult[] = (rest.slice(1) as [Buffer, ...unknown[]][]).map((r) => {
      switch (r[0].toString()) {
        case 'g':
          return { type: 'get', kv: decodeKv(r[1] as RawKv | null) };
        case 'r':
          return {
            type: 'range',
            more: r[1] === 1,
            kvs: (r[2] as RawKv[]).map((raw) => decodeKv(raw) as KeyValue),
          };
        case 'p':
          return { type: 'put', prev: decodeKv(r[1] as RawKv | null) };
        default:
          return {
            type: 'delete',
            deleted: Number(r[1]),
            prev: (r[2] as RawKv[]).map((raw) => decodeKv(raw) as KeyValue),
          };
      }
    });
    return { succeeded: rest[0] === 1, revision: head.revision, results };
  }

  async grant(ttl: number): Promise<Lease> {
    const rounded = Math.ceil(ttl / 1000) * 1000;
    const { rest } = await this.#kv('write', 'lease-grant', [rounded]);
    this.#sweeper.learn(Number(rest[1]));
    return { id: (rest[0] as Buffer).toString(), ttl: rounded };
  }

  async keepAlive(leaseId: string): Promise<Lease> {
    // Renewing twice is harmless, so a lost reply is retried like a read.
    const { rest } = await this.#kv('read', 'lease-keepalive', [leaseId]);
    return { id: leaseId, ttl: Number(rest[0]) };
  }

  async revoke(leaseId: string): Promise<boolean> {
    const { rest } = await this.#kv('write', 'lease-revoke', [leaseId]);
    return rest[0] === 1;
  }

  async leaseInfo(leaseId: string): Promise<LeaseInfo | null> {
    const { rest } = await this.#kv('read', 'lease-info', [leaseId]);
    if (rest[0] === null) return null;
    const keys = (rest[2] as Buffer[]).map((k) => k.toString('utf8')).sort(compareKeys);
    return { id: leaseId, ttl: Number(rest[0]), remaining: Number(rest[1]), keys };
  }

  watch(prefix: string, options?: WatchOptions): AsyncIterableIterator<WatchEvent> {
    return this.#hub.watch(prefix, options);
  }

  async compact(revision: number): Promise<void> {
    await this.#kv('read', 'kv-compact', [revision]);
  }

  async status(): Promise<StoreStatus> {
    const { head, rest } = await this.#kv('read', 'kv-status', []);
    return { revision: head.revision, compactRevision: toSafeInteger(rest[0] as number) };
  }

  // -------------------------------------------------------------------------------------------
  // Queue

  async enqueue(items: NewItem[]): Promise<EnqueueResult[]> {
    // Ids and payloads go as plain arguments; the rest of each item as one JSON row, or one row
    // for the whole batch when only ids and payloads differ (every value as text: the bytes HSET
    // stores are the ones ioredis sent before, String(number)). See q-enqueue.lua for the layout.
    const rows: string[][] = [];
    const args: Arg[] = [''];
    let uniform = true;
    for (const item of items) {
      wellFormed('payload', item.payload);
      wellFormed('meta', item.meta);
      const priority = String(item.priority ?? ITEM_DEFAULTS.priority);
      const dedup = item.dedup ?? null;
      const row = [
        item.queue,
        priority,
        text(optNum(item.runAt)),
        String(item.delay ?? 0),
        text(optNum(item.claimTimeout)),
        dedup ? dedup.key : '',
        text(optNum(dedup?.ttl)),
        dedup?.mode === 'replace' ? 'r' : 'k',
        optText(item.opId),
        // The stored fields, as field/value pairs the script passes to HSET unchanged. The four
        // with a default are not stored when they have it (lib-queue.lua, decodeItem).
        'q',
        item.queue,
      ];
      if (priority !== '0') row.push('pr', priority);
      if (item.maxAttempts != null && item.maxAttempts !== ITEM_DEFAULTS.maxAttempts)
        row.push('ma', String(item.maxAttempts));
      if (item.completedTtl != null && item.completedTtl !== ITEM_DEFAULTS.completedTtl)
        row.push('ctl', String(item.completedTtl));
      if (item.failedTtl != null && item.failedTtl !== ITEM_DEFAULTS.failedTtl)
        row.push('ftl', String(item.failedTtl));
      if (item.timeout != null) row.push('to', String(item.timeout));
      if (item.claimTimeout != null) row.push('ct', String(item.claimTimeout));
      if (item.deadLetter != null) row.push('dl', item.deadLetter);
      if (dedup) row.push('dk', dedup.key);
      if (item.meta != null) row.push('mt', item.meta);
      if (item.opId != null) row.push('op', item.opId);
      if (uniform && rows.length > 0 && !sameRow(rows[0] as string[], row)) uniform = false;
      rows.push(row);
      args.push(item.id, item.payload);
    }
    args[0] = uniform && rows.length > 0 ? `u${JSON.stringify(rows[0])}` : JSON.stringify(rows);
    const reply = (await this.#call('write', 'q-enqueue', args)) as (string | number)[];
    const out: EnqueueResult[] = [];
    for (let i = 0; i < reply.length; i += 3) {
      out.push({
        id: reply[i] as string,
        seq: toSafeInteger(reply[i + 1] as number, 'seq'),
        status: CODE_STATUS[reply[i + 2] as string] as EnqueueResult['status'],
      });
    }
    return out;
  }

  async claim(request: ClaimRequest): Promise<ClaimResult> {
    const args: Arg[] = [
      request.queue,
      request.owner,
      request.limit,
      request.leaseTtl,
      request.start ? '1' : '',
      request.from === 'completed' ? 'c' : 'p',
      this.#config.claimExpireBatch,
      this.#config.claimPromoteBatch,
    ];
    if (request.ids) {
      args.push('ids');
      for (const id of request.ids) args.push(id);
    } else if (request.park) args.push('park', request.park.mailbox, request.park.ttl);
    const reply = await this.#callJson('write', 'q-claim', args);
    return { items: decodeClaimed(reply), nextRunAt: typeof reply[0] === 'string' ? Number(reply[0]) : null };
  }

  async renew(entries: RenewEntry[], leaseTtl: number): Promise<RenewResult[]> {
    const args: Arg[] = [leaseTtl];
    for (const e of entries) {
      wellFormed('progress', e.progress);
      args.push(e.id, e.token, optText(e.progress));
    }
    // Renewing twice extends the lease twice: harmless, so a lost reply is retried like a read.
    const reply = await this.#call('read', 'q-renew', args);
    return entries.map((e, i) => ({
      id: e.id,
      status: reply[2 * i] as RenewResult['status'],
      leaseExpiresAt: reply[2 * i + 1] === null ? null : Number(reply[2 * i + 1]),
    }));
  }

  async settle(ops: SettleOp[]): Promise<SettleResult[]> {
    const args: Arg[] = [];
    for (const op of ops) {
      switch (op.op) {
        case 'start':
          args.push('s', op.id, op.token, op.owner);
          break;
        case 'resolve':
          args.push('v', op.id, op.token, op.owner);
          break;
        case 'unresolve':
          args.push('u', op.id, op.token, op.owner);
          break;
        case 'complete':
          wellFormed('result', op.result);
          args.push('c', op.id, op.token, op.owner, optText(op.result));
          break;
        case 'retry': {
          const error = op.error ? storedError(op.error) : null;
          if (error) wellFormed('error', error.code + error.message);
          args.push(
            'r',
            op.id,
            op.token,
            op.owner,
            error?.code ?? '',
            error?.message ?? '',
            optNum(op.retryAt),
            optNum(op.retryIn),
            op.refundAttempt ? '1' : '',
          );
          break;
        }
        case 'fail': {
          const error = storedError(op.error);
          wellFormed('error', error.code + error.message);
          args.push('f', op.id, op.token, op.owner, error.code, error.message);
          break;
        }
        case 'release': {
          const reason = op.reject?.reason;
          wellFormed('reject.reason', reason);
          args.push(
            'l',
            op.id,
            op.token,
            op.owner,
            op.refundAttempt ? '1' : '',
            optText(reason),
            op.reject?.maxRejections ?? 0,
            reason === undefined ? '' : storedError({ code: 'ROTA_TASK_REJECTED', message: reason }).message,
          );
          break;
        }
        case 'cancel':
          wellFormed('reason', op.reason);
          args.push('x', op.id, optText(op.reason));
          break;
        case 'abort': {
          const error = storedError(op.error);
          wellFormed('error', error.code + error.message);
          args.push('a', op.id, error.code, error.message);
          break;
        }
      }
    }
    const reply = await this.#call('write', 'q-settle', args);
    return ops.map((op, i) => ({
      id: op.id,
      status: reply[3 * i] as SettleStatus,
      state: (reply[3 * i + 1] ?? null) as ItemState | null,
      outcome: (reply[3 * i + 2] ?? null) as Outcome | null,
    }));
  }

  async getItem(id: string): Promise<QueueItem | null> {
    const fields = await this.#main.run('read', (r) => r.hgetall(`${this.#config.base}:i:${id}`));
    const flat: string[] = [];
    for (const [f, v] of Object.entries(fields)) flat.push(f, v);
    return flat.length === 0 ? null : decodeLiveItem([id, flat, []]);
  }

  async listItems(query: ListQuery): Promise<ListResult> {
    const reply = await this.#call('read', 'q-list', [
      query.queue ?? '',
      query.state ?? '',
      query.owner ?? '',
      query.limit ?? ITEM_DEFAULTS.listLimit,
      query.afterSeq ?? 0,
    ]);
    const items: QueueItem[] = [];
    for (let i = 1; i < reply.length; i++) items.push(decodeItem(reply[i] as RawItem) as QueueItem);
    return { items, nextAfterSeq: reply[0] === null ? null : toSafeInteger(reply[0] as number, 'seq') };
  }

  async countItems(queue?: string): Promise<Record<string, QueueCounts>> {
    const reply = (await this.#call('read', 'q-count', [queue ?? ''])) as (string | number)[];
    const out: Record<string, QueueCounts> = {};
    for (let i = 0; i < reply.length; i += 6) {
      out[reply[i] as string] = {
        pending: Number(reply[i + 1]),
        claimed: Number(reply[i + 2]),
        running: Number(reply[i + 3]),
        completed: Number(reply[i + 4]),
        resolving: Number(reply[i + 5]),
      };
    }
    return out;
  }

  async changes(query: ChangesQuery): Promise<ChangesResult> {
    const reply = await this.#call('read', 'q-changes', [
      query.after,
      query.limit ?? ITEM_DEFAULTS.changesLimit,
      query.queue ?? '',
    ]);
    const items = [];
    for (let i = 1; i < reply.length; i++) items.push(decodeItem(reply[i] as RawItem));
    return { items, cursor: toSafeInteger(reply[0] as number, 'changeSeq') };
  }

  async sweep(options: SweepOptions = {}): Promise<SweepResult> {
    const r = (await this.#call('write', 'q-sweep', [
      optNum(options.startTimeout),
      options.abortGrace ?? 0,
      options.tombstoneTtl ?? ITEM_DEFAULTS.tombstoneTtl,
      options.limit ?? ITEM_DEFAULTS.sweepLimit,
    ])) as number[];
    return {
      reclaimed: r[0] as number,
      stalled: r[1] as number,
      unstarted: r[2] as number,
      timedOut: r[3] as number,
      unclaimed: r[4] as number,
      unresolved: r[5] as number,
      pruned: r[6] as number,
      purged: r[7] as number,
      more: r[8] === 1,
    };
  }

  subscribe(queue: string, listener: () => void): () => void {
    return this.#wakeups.subscribe(queue, listener);
  }

  handoff(listener: (items: QueueItem[]) => void): Mailbox {
    const id = randomHex(8);
    const box = this.#wakeups.mailbox(id, (message) => {
      // The reply form of q-claim.
      listener(decodeClaimed(JSON.parse(message) as unknown[]));
    });
    return {
      id,
      unpark: async (queue: string) => {
        await this.#call('write', 'q-unpark', [queue, id]);
        // Hand-offs published before the HDEL are ahead of this reply on the subscriber connection.
        await box.flush();
      },
      close: () => box.close(),
    };
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#sweeper.stop();
    await Promise.all([this.#hub.close(), this.#wakeups.close()]);
    await this.#main.close();
  }
}
