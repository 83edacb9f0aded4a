/**
 * Compare-and-swap loops over a definition and one of its runs. Every state transition of the
 * module goes through one of these: the txn compares the definition's and the run's modRevision,
 * and on a lost compare the fresh values come back in the same round trip (failure branch), so the
 * loop re-decides on current data. Each write embeds a fresh `opId`; after an ambiguous failure a
 * record carrying our `opId` counts as committed (cluster.md §5).
 */
import { encodeJson, type RotaContext } from '../core/context.js';
import { opId as newOpId } from '../core/ids.js';
import type { KeyValue, TxnOp } from '../store/port.js';
import { type DefRecord, decodeDef, decodeRun, type RunRecord, type ScheduleKeys } from './records.js';

export interface Versioned<T> {
  value: T;
  modRevision: number;
  createRevision: number;
}

function versioned<T>(kv: KeyValue | null, decode: (kv: KeyValue) => T | undefined): Versioned<T> | null {
  if (!kv) return null;
  const value = decode(kv);
  return value === undefined
    ? null
    : { value, modRevision: kv.modRevision, createRevision: kv.createRevision };
}

/** What a run mutation decides, given the current definition and run. */
export type RunMutation = { def: DefRecord; run: RunRecord; dropRuns?: string[] } | 'abort';

export type RunTxnResult =
  | { status: 'ok'; revision: number; def: DefRecord; run: RunRecord }
  /** The run is gone (removed) or belongs to another incarnation. */
  | { status: 'gone' }
  /** The run changed under us (interrupted or otherwise rewritten by someone else). */
  | { status: 'stale'; run: RunRecord }
  /** The mutation declined (e.g. the run is no longer running). */
  | { status: 'aborted'; run: RunRecord };

export interface RunTxnOptions {
  name: string;
  runId: string;
  /** The run's token (createRevision); another incarnation counts as gone. */
  token?: number;
  /** Our last write's modRevision: any other value is `stale`. Omit to accept the current record. */
  runRevision?: number;
  /** Decide from fresh values; called again after each lost compare. */
  mutate: (def: DefRecord, run: RunRecord) => RunMutation;
  signal?: AbortSignal;
  /** Values the caller already knows (a cached definition, our own last run write): saves a read. */
  known?: { def: Versioned<DefRecord>; run: Versioned<RunRecord> };
}

/** Read a definition and a run at one revision. */
export async function readDefAndRun(
  ctx: RotaContext,
  keys: ScheduleKeys,
  name: string,
  runId: string,
  signal?: AbortSignal,
): Promise<{ def: Versioned<DefRecord> | null; run: Versioned<RunRecord> | null }> {
  const res = await ctx.retry(
    () =>
      ctx.store.txn({
        compare: [],
        success: [
          { type: 'get', key: keys.def(name) },
          { type: 'get', key: keys.run(name, runId) },
        ],
      }),
    signal,
  );
  const [d, r] = res.results;
  return {
    def: versioned(d?.type === 'get' ? d.kv : null, decodeDef),
    run: versioned(r?.type === 'get' ? r.kv : null, decodeRun),
  };
}

/** Mutate a run and its definition atomically (see {@link RunTxnOptions}). */
export async function runTxn(ctx: RotaContext, keys: ScheduleKeys, o: RunTxnOptions): Promise<RunTxnResult> {
  const defKey = keys.def(o.name);
  const runKey = keys.run(o.name, o.runId);
  let { def, run } = o.known ?? (await readDefAndRun(ctx, keys, o.name, o.runId, o.signal));
  let lastOpId: string | null = null;
  for (let attempt = 0; attempt < 50; attempt++) {
    if (!def || !run) return { status: 'gone' };
    if (o.token !== undefined && run.createRevision !== o.token) return { status: 'gone' };
    if (lastOpId !== null && run.value.opId === lastOpId) {
      // An ambiguous earlier attempt did commit.
      return { status: 'ok', revision: run.modRevision, def: def.value, run: run.value };
    }
    if (o.runRevision !== undefined && run.modRevision !== o.runRevision)
      return { status: 'stale', run: run.value };
    const decision = o.mutate(structuredClone(def.value), structuredClone(run.value));
    if (decision === 'abort') return { status: 'aborted', run: run.value };
    const opId = newOpId();
    lastOpId = opId;
    const newRun = { ...decision.run, opId };
    const newDef = { ...decision.def, opId };
    const success: TxnOp[] = [
      { type: 'put', key: runKey, value: encodeJson(newRun) },
      { type: 'put', key: defKey, value: encodeJson(newDef) },
    ];
    for (const id of decision.dropRuns ?? []) {
      if (id !== o.runId) success.push({ type: 'delete', key: keys.run(o.name, id) });
    }
    const d = def;
    const r = run;
    let res: Awaited<ReturnType<typeof ctx.store.txn>>;
    try {
      res = await ctx.retry(
        () =>
          ctx.store.txn({
            compare: [
              { key: defKey, target: 'modRevision', op: '==', value: d.modRevision },
              { key: runKey, target: 'modRevision', op: '==', value: r.modRevision },
            ],
            success,
            failure: [
              { type: 'get', key: defKey },
              { type: 'get', key: runKey },
            ],
          }),
        o.signal,
      );
    } catch (err) {
      // Maybe committed: re-read and let the opId decide.
      ({ def, run } = await readDefAndRun(ctx, keys, o.name, o.runId, o.signal));
      if (run?.value.opId === opId && def)
        return { status: 'ok', revision: run.modRevision, def: def.value, run: run.value };
      throw err;
    }
    if (res.succeeded) {
      if (o.runRevision !== undefined) o.runRevision = res.revision;
      return { status: 'ok', revision: res.revision, def: newDef, run: newRun };
    }
    const [fd, fr] = res.results;
    def = versioned(fd?.type === 'get' ? fd.kv : null, decodeDef);
    run = versioned(fr?.type === 'get' ? fr.kv : null, decodeRun);
  }
  throw new Error(`schedules: too much contention on ${o.name}/${o.runId}`);
}

/** Mutate a definition alone with a compare-and-swap loop. `mutate` returns null to write nothing. */
export async function defTxn(
  ctx: RotaContext,
  keys: ScheduleKeys,
  name: string,
  mutate: (def: DefRecord) => DefRecord | null,
  options: { signal?: AbortSignal; extra?: (def: DefRecord) => TxnOp[] } = {},
): Promise<
  | { status: 'ok'; revision: number; def: DefRecord; prev: DefRecord }
  | { status: 'gone' }
  | { status: 'unchanged'; def: DefRecord }
> {
  const key = keys.def(name);
  let current = versioned((await ctx.retry(() => ctx.store.get(key), options.signal)).kv, decodeDef);
  let lastOpId: string | null = null;
  for (let attempt = 0; attempt < 50; attempt++) {
    if (!current) return { status: 'gone' };
    if (lastOpId !== null && current.value.opId === lastOpId) {
      return { status: 'ok', revision: current.modRevision, def: current.value, prev: current.value };
    }
    const next = mutate(structuredClone(current.value));
    if (next === null) return { status: 'unchanged', def: current.value };
    const opId = newOpId();
    lastOpId = opId;
    const written = { ...next, opId };
    const c = current;
    const res = await ctx.retry(
      () =>
        ctx.store.txn({
          compare: [{ key, target: 'modRevision', op: '==', value: c.modRevision }],
          success: [{ type: 'put', key, value: encodeJson(written) }, ...(options.extra?.(written) ?? [])],
          failure: [{ type: 'get', key }],
        }),
      options.signal,
    );
    if (res.succeeded) return { status: 'ok', revision: res.revision, def: written, prev: c.value };
    const f = res.results[0];
    current = versioned(f?.type === 'get' ? f.kv : null, decodeDef);
  }
  throw new Error(`schedules: too much contention on ${name}`);
}
