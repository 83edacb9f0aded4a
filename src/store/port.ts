/**
 * The store port: the one contract every Rota module is written against and every backend
 * (memory, SQLite, PostgreSQL, Redis, etcd) implements. It is modeled on etcd's KV API plus a
 * Queue built for tasks. `docs/stores.md` explains how each engine implements each call.
 *
 * Rules every backend follows (the conformance suite checks them):
 * - Revisions, versions, sequences and fencing tokens are safe-integer JavaScript numbers.
 *   A value above `Number.MAX_SAFE_INTEGER` is `ROTA_REVISION_OVERFLOW`.
 * - The store's clock ({@link Store.now}) is the only clock for lease expiry, due times and
 *   staleness. Backends evaluate time themselves (server-side where the engine has a clock).
 * - Bad input is rejected with a coded error before anything is written
 *   (see `withValidation`, which wraps every backend).
 * - Transient connection trouble surfaces as `ROTA_STORE_UNAVAILABLE` (with `detail.ambiguous`
 *   when a write may have been applied); other driver failures as `ROTA_STORE_ERROR`.
 */

// ------------------------------------------------------------------------------------------------
// Capabilities

/** What a backend can do. Modules read these flags; they never check a backend's name. */
export interface StoreCapabilities {
  /** Informational name of the backend (`memory`, `sqlite`, ...). Never branch on it. */
  readonly name: string;
  /** True when `now()` is the store server's clock; false when it is the local clock (etcd, memory). */
  readonly serverClock: boolean;
  /** True when several processes can share the store's data. */
  readonly multiProcess: boolean;
  /** True when data survives a restart of the process or server. */
  readonly persistent: boolean;
  /** Largest accepted key, in UTF-8 bytes. */
  readonly maxKeyBytes: number;
  /** Largest accepted KV value or queue payload, in bytes. */
  readonly maxValueBytes: number;
  /** Lease TTLs are rounded up to a multiple of this (1 000 ms on every backend: etcd's granularity). */
  readonly leaseGranularityMs: number;
  /**
   * Rough queue capacity class: `high` (thousands/s), `low` (etcd: hundreds/s). Workers claim in
   * larger batches by default on `high` stores.
   */
  readonly queueThroughput: 'high' | 'low';
}

// ------------------------------------------------------------------------------------------------
// KV

/** A stored key with its metadata. */
export interface KeyValue {
  readonly key: string;
  readonly value: Uint8Array;
  /** Revision of the write that created this incarnation of the key. */
  readonly createRevision: number;
  /** Revision of the latest write to the key. */
  readonly modRevision: number;
  /** Number of writes since creation (1 after the first put). */
  readonly version: number;
  /** The lease the key is attached to, or null. */
  readonly lease: string | null;
}

export interface GetResult {
  readonly kv: KeyValue | null;
  /** The store revision at which the read was served. */
  readonly revision: number;
}

export interface RangeOptions {
  /** At most this many keys (default: all). */
  limit?: number;
  /** Only keys strictly greater than this (for paging). */
  startAfter?: string;
}

export interface RangeResult {
  /** Matching keys in ascending key order (UTF-8 byte order). */
  readonly kvs: KeyValue[];
  /** True when `limit` cut the result short. */
  readonly more: boolean;
  /** The store revision at which the read was served. */
  readonly revision: number;
}

export interface PutOptions {
  /** Attach the key to this lease: it is deleted when the lease expires or is revoked. */
  lease?: string;
}

export interface PutResult {
  readonly revision: number;
  /** The key as it was before the put, or null if it was absent. */
  readonly prev: KeyValue | null;
}

export interface DeleteOptions {
  /** Delete every key that starts with `key` instead of the one key. */
  prefix?: boolean;
}

export interface DeleteResult {
  /** The store revision after the delete (unchanged when nothing was deleted). */
  readonly revision: number;
  readonly deleted: number;
  readonly prev: KeyValue[];
}

export type CompareOp = '==' | '!=' | '<' | '>';

/**
 * One condition of a transaction. An absent key has version, createRevision and modRevision 0,
 * so `{ key, target: 'version', op: '==', value: 0 }` means "absent".
 * Comparing `value` of an absent key: `==` is false, `!=` is true.
 */
export type Compare =
  | { key: string; target: 'version' | 'createRevision' | 'modRevision'; op: CompareOp; value: number }
  | { key: string; target: 'value'; op: '==' | '!='; value: Uint8Array };

/** One operation inside a transaction branch. */
export type TxnOp =
  | { type: 'get'; key: string }
  | { type: 'range'; prefix: string; limit?: number }
  | { type: 'put'; key: string; value: Uint8Array; lease?: string }
  | { type: 'delete'; key: string; prefix?: boolean };

export type TxnOpResult =
  | { type: 'get'; kv: KeyValue | null }
  | { type: 'range'; kvs: KeyValue[]; more: boolean }
  | { type: 'put'; prev: KeyValue | null }
  | { type: 'delete'; deleted: number; prev: KeyValue[] };

export interface TxnRequest {
  compare: Compare[];
  /** Run when every compare holds. */
  success: TxnOp[];
  /** Run otherwise (default: nothing). */
  failure?: TxnOp[];
}

export interface TxnResult {
  readonly succeeded: boolean;
  /**
   * The store revision after the txn. Every write of one txn shares this one revision;
   * a txn that writes nothing leaves the revision unchanged.
   */
  readonly revision: number;
  /** One result per op of the branch that ran, in order. */
  readonly results: TxnOpResult[];
}

// ------------------------------------------------------------------------------------------------
// Leases

export interface Lease {
  readonly id: string;
  /** Granted TTL in milliseconds, rounded up to `leaseGranularityMs`. */
  readonly ttl: number;
}

export interface LeaseInfo {
  readonly id: string;
  readonly ttl: number;
  /** Milliseconds left by the store's clock. */
  readonly remaining: number;
  /** Keys attached to the lease. */
  readonly keys: string[];
}

// ------------------------------------------------------------------------------------------------
// Watch

export interface WatchEvent {
  readonly type: 'put' | 'delete';
  /** For deletes: `value` is empty, `modRevision` is the deletion's revision, `version` 0. */
  readonly kv: KeyValue;
  /** Revision of the write (== kv.modRevision). Events arrive in ascending revision order. */
  readonly revision: number;
}

export interface WatchOptions {
  /**
   * Deliver every change with revision ≥ fromRevision, then live changes, with no gap and no
   * duplicate. Default: only changes after the call. A revision at or below the compaction
   * point makes the iterator throw `ROTA_COMPACTED`.
   */
  fromRevision?: number;
  /** Ends the iteration (the iterator returns `done`). */
  signal?: AbortSignal;
}

export interface StoreStatus {
  /** Current store revision. */
  readonly revision: number;
  /** Revisions at or below this are gone from history (0 = nothing compacted). */
  readonly compactRevision: number;
}

// ------------------------------------------------------------------------------------------------
// Queue

/** Lifecycle states of a queue item (tasks.md §2.2). `deleted` appears only in the change feed. */
export type ItemState = 'pending' | 'claimed' | 'running' | 'completed' | 'resolving';
export type FeedState = ItemState | 'deleted';
export type Outcome = 'succeeded' | 'failed' | 'cancelled';

/** A stored error: stable code plus message (truncated to 1 024 chars by the store). */
export interface ItemError {
  code: string;
  message: string;
}

/** How an item deduplicates against others of its queue (tasks.md §2.5). */
export interface DedupSpec {
  key: string;
  /** Keep the key active until createdAt + ttl even after completion. */
  ttl?: number;
  /** `keep` (default): return the holder. `replace`: replace a pending holder's payload, runAt, priority. */
  mode?: 'keep' | 'replace';
}

/** An item to enqueue. Text fields hold JSON produced by the module; the store never parses them. */
export interface NewItem {
  id: string;
  queue: string;
  /** JSON text. */
  payload: string;
  /** Higher runs first. int32. Default 0. */
  priority?: number;
  /** Absolute store time when the item becomes runnable. Wins over `delay`. */
  runAt?: number;
  /** Milliseconds after store now when the item becomes runnable. Default 0. */
  delay?: number;
  /** Total handler attempts. Default 3. */
  maxAttempts?: number;
  /** Run timeout in ms, enforced by `sweep` (startedAt + timeout + abortGrace). Null = none. */
  timeout?: number | null;
  /** Fail the item if still unclaimed this long after runAt (enforced by `sweep`). Null = never. */
  claimTimeout?: number | null;
  /** Queue receiving a copy of the item when it fails for good. */
  deadLetter?: string | null;
  /** Keep succeeded/cancelled items this long after completion (default 3 600 000). */
  completedTtl?: number;
  /** Keep failed items this long after completion (default 604 800 000). */
  failedTtl?: number;
  dedup?: DedupSpec | null;
  /** Module-owned JSON text the store keeps verbatim (backoff, tags, annotation, ...). */
  meta?: string | null;
  /** Random id of the operation, for ambiguous-retry detection. */
  opId?: string | null;
}

/** A stored queue item. */
export interface QueueItem {
  readonly id: string;
  readonly queue: string;
  readonly state: ItemState;
  readonly outcome: Outcome | null;
  readonly payload: string;
  readonly priority: number;
  readonly runAt: number;
  /** Store-wide enqueue order. */
  readonly seq: number;
  /** Attempts started so far (incremented on start). */
  readonly attempt: number;
  readonly maxAttempts: number;
  readonly owner: string | null;
  /** Fencing token of the latest claim (kept after the claim ends, for idempotent repeats). */
  readonly token: number | null;
  readonly leaseExpiresAt: number | null;
  readonly claimedAt: number | null;
  readonly startedAt: number | null;
  readonly completedAt: number | null;
  readonly createdAt: number;
  readonly updatedAt: number;
  readonly progress: string | null;
  readonly result: string | null;
  readonly error: ItemError | null;
  readonly rejections: number;
  readonly lastRejection: string | null;
  /** Lease expiries of a running attempt (stalls) so far. */
  readonly stalls: number;
  readonly timeout: number | null;
  readonly claimTimeout: number | null;
  readonly deadLetter: string | null;
  readonly completedTtl: number;
  readonly failedTtl: number;
  readonly dedupKey: string | null;
  readonly dedupUntil: number | null;
  /** When a completed item is pruned (completedAt + completedTtl or failedTtl). */
  readonly expireAt: number | null;
  readonly meta: string | null;
  readonly opId: string | null;
  /**
   * Position of this item's latest transition in the change feed: store-wide, never decreasing,
   * strictly greater than any cursor the feed returned before this transition became visible.
   */
  readonly changeSeq: number;
}

/** A change-feed entry: the item's state after its latest transition, or a tombstone. */
export type FeedItem = Omit<QueueItem, 'state'> & { readonly state: FeedState };

export interface EnqueueResult {
  readonly id: string;
  readonly seq: number;
  /**
   * `created`: stored now (or earlier by the same `opId`: an ambiguous retry).
   * `deduplicated`: an active dedup holder exists; `id` is the holder's.
   * `replaced`: the pending holder's payload/runAt/priority were replaced; `id` is the holder's.
   */
  readonly status: 'created' | 'deduplicated' | 'replaced';
}

export interface ClaimRequest {
  queue: string;
  owner: string;
  /** At most this many items (≥ 1). */
  limit: number;
  /** Lease of each claimed item, in ms (≥ 1 000). */
  leaseTtl: number;
  /** Go straight to `running` (attempt + 1, startedAt). Default false. */
  start?: boolean;
  /** `pending` (default): runnable work. `completed`: completed items for resolution (→ `resolving`). */
  from?: 'pending' | 'completed';
  /**
   * Consider only these items (ids of `queue`; others are ignored). With `from: 'completed'` this
   * is how one given task is taken for resolution (`tasks.resolving(id)`). Unique, at most 10 000.
   */
  ids?: string[];
  /**
   * Stores with {@link QueuePort.handoff}: when fewer than `limit` pending items were claimed, leave
   * a parked claim for the rest, delivered to `mailbox` by the next enqueue that makes items of
   * `queue` runnable within `ttl` ms. A claim that comes back full (or `Mailbox.unpark`) withdraws
   * it. Ignored with `ids` or `from: 'completed'`, and by stores without hand-off.
   */
  park?: { mailbox: string; ttl: number };
}

/**
 * Where a store hands claimed items to an idle worker (see {@link QueuePort.handoff}). Items
 * delivered here are claimed exactly as `claim` would have claimed them for the parked request
 * (same owner, lease, `start`): the receiver holds them and must settle or renew them.
 */
export interface Mailbox {
  readonly id: string;
  /**
   * Withdraw the parked claim on `queue`, if any. Resolves once every hand-off made before the
   * withdrawal was delivered to the listener.
   */
  unpark(queue: string): Promise<void>;
  /** Stop listening; no hand-off is made to this mailbox afterwards. */
  close(): void;
}

export interface ClaimResult {
  /** Claimed items, in claim order (priority desc, runAt asc, seq asc), each with a fresh token. */
  readonly items: QueueItem[];
  /**
   * When fewer than `limit` were claimed: the earliest store time at which more work may become
   * claimable in this queue (a future runAt or a lease expiry), or null when nothing is waiting.
   */
  readonly nextRunAt: number | null;
}

/** Outcome of one renew or settle entry. */
export type SettleStatus = 'ok' | 'noop' | 'stale' | 'wrong_owner' | 'not_found' | 'invalid_state';

export interface RenewEntry {
  id: string;
  token: number;
  /** New progress (JSON text); omitted = unchanged. */
  progress?: string;
}

export interface RenewResult {
  readonly id: string;
  /** `ok`: lease extended. `cancelled`: the item was cancelled (abort the handler). `stale`: token lost. */
  readonly status: 'ok' | 'stale' | 'cancelled';
  readonly leaseExpiresAt: number | null;
}

/**
 * One settle operation. Token-fenced ops carry the claim's `token` and `owner`; a different token
 * gives `stale` (or `wrong_owner` when the item is owned by someone else) and changes nothing.
 * A repeat of an op that already took effect under the same token gives `noop`.
 */
export type SettleOp =
  /** claimed → running (attempt + 1). */
  | { op: 'start'; id: string; token: number; owner: string }
  /** claimed|running → completed/succeeded (from claimed, counts as started). */
  | { op: 'complete'; id: string; token: number; owner: string; result?: string | null }
  /** running → pending at `retryAt` (absolute) or now + `retryIn`; `refundAttempt` gives the attempt back. */
  | {
      op: 'retry';
      id: string;
      token: number;
      owner: string;
      error?: ItemError | null;
      retryAt?: number;
      retryIn?: number;
      refundAttempt?: boolean;
    }
  /** claimed|running → completed/failed; a copy goes to the item's dead-letter queue if it has one. */
  | { op: 'fail'; id: string; token: number; owner: string; error: ItemError }
  /**
   * claimed|running → pending now. `refundAttempt`: give a running attempt back. `reject`: count a
   * rejection; above `maxRejections` the item fails with ROTA_TASK_REJECTED instead.
   */
  | {
      op: 'release';
      id: string;
      token: number;
      owner: string;
      refundAttempt?: boolean;
      reject?: { reason: string; maxRejections: number };
    }
  /** resolving → deleted. */
  | { op: 'resolve'; id: string; token: number; owner: string }
  /** resolving → completed (give the resolution back). */
  | { op: 'unresolve'; id: string; token: number; owner: string }
  /** Admin: pending|claimed|running → completed/cancelled. Not fenced. */
  | { op: 'cancel'; id: string; reason?: string }
  /** Admin: pending|claimed|running → completed/failed, no retry, no dead-letter. Not fenced. */
  | { op: 'abort'; id: string; error: ItemError };

export interface SettleResult {
  readonly id: string;
  readonly status: SettleStatus;
  /** The item's state after the op (or its current state when refused); null when absent. */
  readonly state: ItemState | null;
  readonly outcome: Outcome | null;
}

export interface ListQuery {
  queue?: string;
  state?: ItemState;
  owner?: string;
  /** At most this many (default 100, max 10 000). */
  limit?: number;
  /** Only items with seq greater than this (paging cursor; default 0). */
  afterSeq?: number;
}

export interface ListResult {
  /** Items in ascending seq order. */
  readonly items: QueueItem[];
  /** Pass as `afterSeq` for the next page; null when this was the last page. */
  readonly nextAfterSeq: number | null;
}

export interface ChangesQuery {
  /** Only this queue (default: every queue). */
  queue?: string;
  /** Only changes with changeSeq greater than this (0 = from the start of retained history). */
  after: number;
  /** At most this many (default 1 000). */
  limit?: number;
}

export interface ChangesResult {
  /** The latest state of every item that changed after the cursor, in changeSeq order. */
  readonly items: FeedItem[];
  /** The cursor to pass next (the last changeSeq returned, or `after` when nothing changed). */
  readonly cursor: number;
}

export interface SweepOptions {
  /** Return claimed-but-not-started items to pending after this long since claimedAt (store time). */
  startTimeout?: number;
  /** Extra grace after startedAt + timeout before a running item is failed with ROTA_TASK_TIMEOUT. */
  abortGrace?: number;
  /** How long tombstones of deleted items stay in the change feed (default 60 000). */
  tombstoneTtl?: number;
  /** Process at most this many items per rule (default 1 000). */
  limit?: number;
}

export interface SweepResult {
  /** Expired claims returned to pending. */
  readonly reclaimed: number;
  /** Running items whose lease expired: back to pending (attempt counted) or failed (no attempts left). */
  readonly stalled: number;
  /** Claims older than startTimeout returned to pending. */
  readonly unstarted: number;
  /** Running items failed for ROTA_TASK_TIMEOUT. */
  readonly timedOut: number;
  /** Pending items failed for ROTA_TASK_UNCLAIMED. */
  readonly unclaimed: number;
  /** Resolving items whose resolver lease expired, back to completed. */
  readonly unresolved: number;
  /** Completed items deleted after their retention. */
  readonly pruned: number;
  /** Tombstones purged from the change feed. */
  readonly purged: number;
  /** True when some rule hit `limit`: call again. */
  readonly more: boolean;
}

/** Per-queue item counts by state. */
export type QueueCounts = Record<ItemState, number>;

/** The Queue half of the port (tasks.md §2.3). */
export interface QueuePort {
  /**
   * Store a batch atomically: all items or none. An `id` that exists already fails the whole
   * batch with `ROTA_TASK_EXISTS` (`detail.id`) unless the stored item carries the same `opId`
   * (an ambiguous retry), which counts as `created`. Dedup is evaluated per item.
   */
  enqueue(items: NewItem[]): Promise<EnqueueResult[]>;
  /** Claim up to `limit` runnable items in one round trip (see {@link ClaimRequest}). */
  claim(request: ClaimRequest): Promise<ClaimResult>;
  /** Extend the leases of claimed/running/resolving items; report stale and cancelled ones. */
  renew(entries: RenewEntry[], leaseTtl: number): Promise<RenewResult[]>;
  /** Apply a batch of transitions in one round trip; one result per op, in order. */
  settle(ops: SettleOp[]): Promise<SettleResult[]>;
  /** One item by id, or null. */
  getItem(id: string): Promise<QueueItem | null>;
  /** Items by queue / state / owner, in seq order, paged. */
  listItems(query: ListQuery): Promise<ListResult>;
  /** Item counts by state for each queue that has items (or for the one queue asked). */
  countItems(queue?: string): Promise<Record<string, QueueCounts>>;
  /**
   * The change feed: items whose latest transition is after `after`, in changeSeq order
   * (conflated: one entry per item, its latest state). Items changed by one atomic write may share
   * a changeSeq, and a page never splits such a group (it may exceed `limit` to finish one).
   * Gap-free: once a cursor is returned, no item can later appear with a changeSeq at or below it.
   * `ROTA_COMPACTED` when tombstones newer than `after` were purged (re-list, then continue from
   * the new cursor).
   */
  changes(query: ChangesQuery): Promise<ChangesResult>;
  /**
   * Run the converger's store-side rules once (tasks.md §2.6) by the store's clock, each fenced so
   * a concurrent worker transition wins or loses atomically.
   */
  sweep(options?: SweepOptions): Promise<SweepResult>;
  /**
   * Call `listener` soon after items of `queue` become runnable or complete (enqueue, retry,
   * release, cancel, completion), including writes by other processes. Coalesced; may fire
   * spuriously. `'*'` listens to every queue. Returns the unsubscribe function.
   */
  subscribe(queue: string, listener: () => void): () => void;
  /**
   * Optional (Redis, PostgreSQL): direct hand-off to idle workers. A claim with `park` that came
   * back short leaves a parked claim; an enqueue that makes items of that queue runnable claims
   * them for it in the same atomic write and delivers them to `listener`, so an idle worker starts
   * a new task one hop after the enqueue instead of after a wake-up and a claim. On Redis any
   * client's enqueue hands off; on PostgreSQL only this client's own (parks live in its memory).
   * A mailbox whose listener is gone is never handed items. Items delivered while the connection
   * is down are lost to the listener and come back to pending when their lease expires, like
   * those of a worker that died.
   */
  handoff?(listener: (items: QueueItem[]) => void): Mailbox;
}

// ------------------------------------------------------------------------------------------------
// The whole store

/** The KV half of the port. */
export interface KvPort {
  get(key: string): Promise<GetResult>;
  range(prefix: string, options?: RangeOptions): Promise<RangeResult>;
  put(key: string, value: Uint8Array, options?: PutOptions): Promise<PutResult>;
  delete(key: string, options?: DeleteOptions): Promise<DeleteResult>;
  /** All-or-nothing compare-and-swap over several keys. */
  txn(request: TxnRequest): Promise<TxnResult>;

  /** Grant a lease; `ttl` in ms (≥ 1), rounded up to whole seconds. */
  grant(ttl: number): Promise<Lease>;
  /** Renew a lease for its full TTL. `ROTA_LEASE_NOT_FOUND` once it expired or was revoked. */
  keepAlive(leaseId: string): Promise<Lease>;
  /** Revoke a lease, deleting its keys (with delete events). Resolves false if it did not exist. */
  revoke(leaseId: string): Promise<boolean>;
  /** A lease's remaining time and keys, or null if it does not exist. */
  leaseInfo(leaseId: string): Promise<LeaseInfo | null>;

  /** Every change under `prefix`, in revision order, resumable from a revision. */
  watch(prefix: string, options?: WatchOptions): AsyncIterableIterator<WatchEvent>;
  /** Discard history up to and including `revision`. */
  compact(revision: number): Promise<void>;
  status(): Promise<StoreStatus>;
}

/** A store: KV + leases + watch + queue + the store clock. */
export interface Store extends KvPort, QueuePort {
  readonly capabilities: StoreCapabilities;
  /** The store's clock, epoch ms (server time where the engine has one). */
  now(): Promise<number>;
  /** Release connections and end every watch iterator. Idempotent. */
  close(): Promise<void>;
}

/** Defaults of optional {@link NewItem} fields, shared by every backend. */
export const ITEM_DEFAULTS = {
  priority: 0,
  maxAttempts: 3,
  completedTtl: 3_600_000,
  failedTtl: 604_800_000,
  tombstoneTtl: 60_000,
  listLimit: 100,
  changesLimit: 1_000,
  sweepLimit: 1_000,
  errorMessageMax: 1_024,
} as const;
