/** schedules.md §2.5–2.7 on the memory store with a manual clock: runs, monitoring, modes, policies. */
import { describe, it } from 'node:test';
import { encodeJson } from '../../src/core/context.js';
import { decodeRun, type RunRecord } from '../../src/schedules/records.js';
import type { RunInfo } from '../../src/schedules/types.js';
import { advanceUntil, nextRunEnd } from '../../src/testing/index.js';
import { assert, rejectsWith, withManualCluster } from '../support/scenarios.js';
import { fakeElector, fakeLocker as fakeLockerForTests } from './fakes.js';
import { advance, record, startAll, work } from './helpers.js';

const statusOf = (runs: RunInfo[], runId: string) => runs.find((r) => r.runId === runId)?.status;

describe('schedules runner (memory, manual clock)', () => {
  it('SC-6 stop() aborts both local runs and records them interrupted', async () => {
    await withManualCluster({ nodes: 1 }, async (cluster) => {
      const node = cluster.nodes[0]!;
      const s = node.rota.schedules;
      const reasons: unknown[] = [];
      const handler = async (ctx: { signal: AbortSignal }) => {
        await work(node, 60_000, ctx.signal).catch((err) => {
          reasons.push(ctx.signal.reason);
          throw err;
        });
      };
      await s.register({ name: 'a', every: 1000 }, handler);
      await s.register({ name: 'b', every: 1000 }, handler);
      await s.start();
      await advance(cluster, 1100);
      const stopping = s.stop();
      await advance(cluster, 100);
      await stopping;
      assert.equal(reasons.length, 2);
      for (const name of ['a', 'b']) {
        const [run] = await s.runs(name);
        assert.equal(run?.status, 'interrupted');
        assert.equal(run?.reason, 'shutdown');
      }
    });
  });

  it('SC-7 an externally interrupted run aborts within one monitorInterval; the other keeps running', async () => {
    await withManualCluster({ nodes: 1 }, async (cluster) => {
      const node = cluster.nodes[0]!;
      const s = node.rota.schedules;
      const aborted = new Set<string>();
      const handler = async (ctx: { name: string; signal: AbortSignal }) => {
        await work(node, 5000, ctx.signal).catch(() => aborted.add(ctx.name));
      };
      await s.register({ name: 'A', every: 60_000, startAt: 'now' }, handler);
      await s.register({ name: 'B', every: 60_000, startAt: 'now' }, handler);
      await s.start({ monitorInterval: 200, interruptThreshold: 10_000 });
      await advance(cluster, 100);
      const [runA] = await s.runs('A');
      assert.equal(runA?.status, 'running');
      const key = node.rota.context.keys.key('schedules', 'runs', 'A', runA!.runId);
      const { kv } = await node.rota.store.get(key);
      const rec = decodeRun(kv!) as RunRecord;
      await node.rota.store.put(key, encodeJson({ ...rec, status: 'interrupted', reason: 'external' }));
      await advance(cluster, 250);
      assert.deepEqual([...aborted], ['A']);
      await advance(cluster, 5000);
      assert.equal((await s.runs('B'))[0]?.status, 'succeeded');
    });
  });

  it('SC-8 progress reports are persisted while running; an invalid one throws and changes nothing', async () => {
    await withManualCluster({ nodes: 1 }, async (cluster) => {
      const node = cluster.nodes[0]!;
      const s = node.rota.schedules;
      const seen: unknown[] = [];
      let thrown: unknown = null;
      await s.register({ name: 'p', every: 60_000, startAt: 'now' }, async (ctx) => {
        await ctx.progress({ total: 10, completed: 0, retries: 1 }, { flush: true });
        seen.push((await s.run('p', ctx.runId)).progress);
        await ctx.progress({ total: 20, completed: 10 }, { flush: true });
        seen.push((await s.run('p', ctx.runId)).progress);
        try {
          void ctx.progress({ total: 10, completed: 20 });
        } catch (err) {
          thrown = err;
        }
        seen.push((await s.run('p', ctx.runId)).status);
        await work(node, 300);
      });
      await s.start({ monitorInterval: 100, interruptThreshold: 1000 });
      await advance(cluster, 500);
      assert.deepEqual(seen, [
        { total: 10, completed: 0, retries: 1 },
        { total: 20, completed: 10, retries: 0 },
        'running',
      ]);
      assert.equal((thrown as { code?: string }).code, 'ROTA_INVALID_ARGUMENT');
      const [run] = await s.runs('p');
      assert.deepEqual(run?.progress, { total: 20, completed: 10, retries: 0 });
    });
  });

  it('SC-9 with stallTimeout a run that never reports is interrupted and its signal aborts', async () => {
    await withManualCluster({ nodes: 1 }, async (cluster) => {
      const node = cluster.nodes[0]!;
      const s = node.rota.schedules;
      const aborts: unknown[] = [];
      await s.register(
        { name: 'quiet', every: 3_600_000, startAt: 'now', stallTimeout: 1000, maxInterruptions: 0 },
        async (ctx) => {
          await work(node, 60_000, ctx.signal).catch(() => aborts.push(ctx.signal.reason));
        },
      );
      await s.start({ monitorInterval: 200, interruptThreshold: 2000 });
      await advance(cluster, 900);
      assert.equal(aborts.length, 0, 'not before stallTimeout');
      await advance(cluster, 600);
      assert.equal(aborts.length, 1);
      const [run] = await s.runs('quiet');
      assert.equal(run?.reason, 'stalled');
      assert.equal(run?.error?.code, 'ROTA_RUN_INTERRUPTED', 'maxInterruptions 0: recorded failed');
    });
  });

  it('SC-10 a live handler that never reports is not interrupted without stallTimeout', async () => {
    await withManualCluster({ nodes: 1 }, async (cluster) => {
      const node = cluster.nodes[0]!;
      const s = node.rota.schedules;
      let aborted = false;
      await s.register({ name: 'quiet', every: 3_600_000, startAt: 'now' }, async (ctx) => {
        await work(node, 10_000, ctx.signal).catch(() => {
          aborted = true;
        });
      });
      await s.start({ monitorInterval: 200, interruptThreshold: 1000 });
      await advance(cluster, 10_500, 100);
      assert.equal(aborted, false);
      const [run] = await s.runs('quiet');
      assert.equal(run?.status, 'succeeded');
    });
  });

  it('SC-11 a throwing handler fails the run with its progress and error; a good one succeeds and leaves currentRuns', async () => {
    await withManualCluster({ nodes: 1 }, async (cluster) => {
      const node = cluster.nodes[0]!;
      const s = node.rota.schedules;
      await s.register({ name: 'bad', every: 3_600_000, startAt: 'now' }, async (ctx) => {
        await ctx.progress({ completed: 10, total: 10 });
        throw new Error('boom');
      });
      await s.register({ name: 'good', every: 3_600_000, startAt: 'now' }, () => undefined);
      await s.start();
      await advance(cluster, 100);
      const [bad] = await s.runs('bad');
      assert.equal(bad?.status, 'failed');
      assert.deepEqual(bad?.progress, { completed: 10, total: 10, retries: 0 });
      assert.equal(bad?.error?.code, 'ROTA_HANDLER_FAILED');
      assert.match(bad?.error?.message ?? '', /boom/);
      assert.equal((await s.runs('good'))[0]?.status, 'succeeded');
      assert.deepEqual((await s.get('good')).currentRuns, []);
    });
  });

  it('SC-15 the sweeper interrupts exactly the runs whose liveness bump is older than interruptThreshold', async () => {
    await withManualCluster({ nodes: 2 }, async (cluster) => {
      const [n1, n2] = cluster.nodes as [(typeof cluster.nodes)[0], (typeof cluster.nodes)[0]];
      const s = n1.rota.schedules;
      const { store } = n1.rota;
      const keys = n1.rota.context.keys;
      const now = cluster.clock!.now();
      const HOUR = 3_600_000;
      for (const h of [1, 3, 5, 7]) {
        await s.register({ name: `r${h}`, every: 24 * HOUR });
        const defKey = keys.key('schedules', 'defs', `r${h}`);
        const def = JSON.parse(new TextDecoder().decode((await store.get(defKey)).kv!.value));
        const startedAt = now - h * HOUR;
        def.currentRuns = [
          {
            runId: 'x',
            slotAt: startedAt,
            attempt: 1,
            kind: 'slot',
            owner: 'n2',
            sessionId: n2.rota.cluster.session.sessionId,
            startedAt,
            timeout: null,
          },
        ];
        const run: RunRecord = {
          v: 1,
          name: `r${h}`,
          runId: 'x',
          slotAt: startedAt,
          attempt: 1,
          kind: 'slot',
          owner: 'n2',
          sessionId: n2.rota.cluster.session.sessionId,
          status: 'running',
          progress: null,
          startedAt,
          updatedAt: startedAt,
          lastReportAt: startedAt,
          endedAt: null,
          error: null,
          reason: null,
          skipped: null,
          interruptions: 0,
          opId: 'o',
        };
        await store.put(defKey, encodeJson(def));
        await store.put(keys.key('schedules', 'runs', `r${h}`, 'x'), encodeJson(run));
      }
      await s.start({ monitorInterval: 60_000, interruptThreshold: 4 * HOUR });
      await advance(cluster, 50);
      await s.sweepNow();
      const status = async (h: number) => (await s.run(`r${h}`, 'x')).status;
      assert.deepEqual(
        [await status(1), await status(3), await status(5), await status(7)],
        ['running', 'running', 'interrupted', 'interrupted'],
      );
      assert.equal((await s.run('r7', 'x')).reason, 'stale');
    });
  });

  it('SC-17 a node restarting with the same nodeId interrupts its old running run during start()', async () => {
    await withManualCluster({ nodes: 1, nodeOptions: { sessionTtl: 2000 } }, async (cluster) => {
      const old = cluster.nodes[0]!;
      await old.rota.schedules.register({ name: 'j', every: 3_600_000, startAt: 'now' }, async (ctx) => {
        await work(old, 60_000, ctx.signal).catch(() => undefined);
      });
      await old.rota.schedules.start();
      await advance(cluster, 100);
      const [before] = await old.rota.schedules.runs('j');
      assert.equal(before?.status, 'running');
      cluster.kill(old);
      await advance(cluster, 3000, 100);
      const fresh = await cluster.addNode({ nodeId: 'n1', sessionTtl: 2000 });
      await fresh.rota.schedules.register({ name: 'j', every: 3_600_000, startAt: 'now' }, () => undefined);
      await fresh.rota.schedules.start({ monitorInterval: 60_000, interruptThreshold: 3_600_000 });
      const run = await fresh.rota.schedules.run('j', before!.runId);
      assert.equal(run.status, 'interrupted');
      assert.equal(run.reason, 'restarted');
    });
  });

  it('SC-18 keepRuns bounds the terminal run records', async () => {
    await withManualCluster({ nodes: 1 }, async (cluster) => {
      const s = cluster.nodes[0]!.rota.schedules;
      await s.register({ name: 'k', every: 1000, keepRuns: 2 }, () => undefined);
      await s.start();
      await advance(cluster, 3100);
      const runs = await s.runs('k');
      assert.equal((await s.get('k')).runsStarted, 3);
      assert.equal(runs.length, 2);
      assert.ok(runs.every((r) => r.status === 'succeeded'));
    });
  });

  it('SC-20 overlap allow / wait / wait with stopAt on a 1 s handler every 500 ms', async () => {
    await withManualCluster({ nodes: 1 }, async (cluster) => {
      const node = cluster.nodes[0]!;
      const s = node.rota.schedules;
      const t0 = cluster.clock!.now();
      const started = record([node], 'run:started');
      const handler = (ctx: { signal: AbortSignal }) => work(node, 1000, ctx.signal);
      await s.register({ name: 'allow', every: 500, overlap: 'allow' }, handler);
      await s.register({ name: 'wait', every: 500, overlap: 'wait' }, handler);
      await s.register({ name: 'stop', every: 500, overlap: 'wait', stopAt: t0 + 1100 }, handler);
      await s.start();
      await advance(cluster, 1600);
      const count = (name: string) => started.filter((e) => e.name === name).length;
      assert.deepEqual([count('allow'), count('wait'), count('stop')], [3, 2, 2]);
      await advance(cluster, 2000);
      assert.equal(count('stop'), 2);
      assert.equal((await s.get('stop')).state, 'exhausted');
    });
  });

  it('SC-21 overlap skip: skipped slots are recorded with reason overlap', async () => {
    await withManualCluster({ nodes: 1 }, async (cluster) => {
      const node = cluster.nodes[0]!;
      const s = node.rota.schedules;
      const started = record([node], 'run:started');
      await s.register({ name: 'o', every: 100, keepRuns: 100 }, (ctx) => work(node, 200, ctx.signal));
      await s.start();
      await advance(cluster, 650, 10);
      assert.equal(started.length, 3, 'three runs in 600 ms');
      const runs = await s.runs('o');
      const skipped = runs.filter((r) => r.status === 'skipped');
      assert.ok(skipped.length > 0 && skipped.every((r) => r.skipped?.reason === 'overlap'));
      // Every slot up to the last one decided is a run or lies in a skipped record.
      const covered = new Set<number>();
      for (const r of runs) {
        if (r.skipped) for (let t = r.skipped.from; t <= r.skipped.to; t += 100) covered.add(t);
        else covered.add(r.slotAt);
      }
      const slots = [...covered].sort((a, b) => a - b);
      for (let i = 1; i < slots.length; i++) assert.equal(slots[i]! - slots[i - 1]!, 100, 'no slot missing');
    });
  });

  it('SC-23 stop() past stopTimeout rejects ROTA_STOP_TIMEOUT, records interrupted, fences the late completion', async () => {
    await withManualCluster({ nodes: 1 }, async (cluster) => {
      const node = cluster.nodes[0]!;
      const s = node.rota.schedules;
      const late = record([node], 'run:late-completion');
      await s.register({ name: 'stubborn', every: 3_600_000, startAt: 'now' }, () => work(node, 5000));
      await s.start({ stopTimeout: 100 });
      await advance(cluster, 50);
      const stopping = s.stop();
      stopping.catch(() => undefined);
      await advance(cluster, 150);
      await rejectsWith(stopping, 'ROTA_STOP_TIMEOUT');
      const [run] = await s.runs('stubborn');
      assert.equal(run?.status, 'interrupted');
      await advance(cluster, 5000, 100);
      assert.equal(late.length, 1);
      assert.equal((await s.runs('stubborn'))[0]?.status, 'interrupted');
    });
  });

  it('SC-25 start() three times is one runner', async () => {
    await withManualCluster({ nodes: 1 }, async (cluster) => {
      const node = cluster.nodes[0]!;
      const s = node.rota.schedules;
      let runs = 0;
      await s.register({ name: 'j', every: 100 }, async (ctx) => {
        runs++;
        await work(node, 10, ctx.signal);
      });
      await Promise.all([s.start(), s.start(), s.start()]);
      await s.start();
      await advance(cluster, 1000, 10);
      assert.ok(runs >= 9 && runs <= 10, `${runs} runs`);
    });
  });

  it('SC-29 concurrency limit 2: wait runs all 10 with waiting() peaking at 8; skip records 8 skipped slots', async () => {
    for (const mode of ['wait', 'skip'] as const) {
      await withManualCluster({ nodes: 1 }, async (cluster) => {
        const node = cluster.nodes[0]!;
        const s = node.rota.schedules;
        const t0 = cluster.clock!.now();
        const started = record([node], 'run:started');
        for (let i = 0; i < 10; i++) {
          await s.register(
            { name: `c${i}`, once: t0 + 1000, ...(mode === 'skip' ? { catchUpWindow: 50 } : {}) },
            (ctx) => work(node, 100, ctx.signal),
          );
        }
        await s.start({ concurrency: { limit: 2, mode } });
        let peak = 0;
        for (let t = 0; t < 1700; t += 10) {
          await cluster.advance(10);
          peak = Math.max(peak, s.waiting());
        }
        if (mode === 'wait') {
          assert.equal(started.length, 10);
          assert.equal(peak, 8);
          const last = Math.max(...started.map((e) => e.startedAt));
          assert.ok(
            last - (t0 + 1000) >= 400 && last - (t0 + 1000) <= 700,
            `all started by +${last - t0 - 1000} ms`,
          );
        } else {
          assert.equal(started.length, 2);
          assert.equal(peak, 0);
          let skipped = 0;
          for (let i = 0; i < 10; i++)
            skipped += (await s.runs(`c${i}`)).filter((r) => r.status === 'skipped').length;
          assert.equal(skipped, 8);
        }
      });
    }
  });

  it('SC-32 mode leader: only the leader runs slots; after the leader is killed the next one does', async () => {
    await withManualCluster({ nodes: 3, nodeOptions: { sessionTtl: 2000 } }, async (cluster) => {
      const started = record(cluster.nodes, 'run:started');
      for (const n of cluster.nodes)
        await n.rota.schedules.register({ name: 'j', every: 1000 }, () => undefined);
      await startAll(cluster.nodes, { mode: 'leader', monitorInterval: 500, interruptThreshold: 5000 });
      await advance(cluster, 3100, 50);
      const leaders = new Set(started.map((e) => e.node));
      assert.equal(leaders.size, 1);
      const [leader] = [...leaders] as [string];
      assert.ok(started.length >= 2);
      cluster.kill(leader);
      const before = started.length;
      await advance(cluster, 6000, 50);
      const after = started.slice(before);
      assert.ok(after.length > 0, 'slots run after the leader died');
      assert.ok(after.every((e) => e.node !== leader));
      assert.equal(new Set(after.map((e) => e.node)).size, 1, 'one new leader');
      const slots = started.map((e) => e.slotAt);
      assert.equal(new Set(slots).size, slots.length, 'no slot ran twice');
    });
  });

  it('SC-33 a refusing per-schedule locker fires onClaimLost; local scope runs on every node without the locker', async () => {
    await withManualCluster({ nodes: 3 }, async (cluster) => {
      const [n1] = cluster.nodes as [(typeof cluster.nodes)[0]];
      const lost: string[] = [];
      let ran = 0;
      const refusing = fakeLockerForTests(() => false);
      await n1.rota.schedules.register(
        {
          name: 'locked',
          every: 1000,
          locker: refusing,
          hooks: { onClaimLost: (i) => void lost.push(`${i.reason}@${i.slotAt}`) },
        },
        () => {
          ran++;
        },
      );
      const spy = fakeLockerForTests(() => true);
      const local = record(cluster.nodes, 'run:started');
      for (const n of cluster.nodes) {
        await n.rota.schedules.register(
          { name: 'loc', every: 1000, scope: 'local', locker: spy },
          () => undefined,
        );
      }
      await n1.rota.schedules.start();
      await Promise.all(cluster.nodes.slice(1).map((n) => n.rota.schedules.start()));
      await advance(cluster, 2100, 50);
      assert.equal(ran, 0);
      assert.ok(lost.length >= 2 && lost.every((l) => l.startsWith('locker@')), lost.join(','));
      assert.ok(refusing.calls.every((k) => k.startsWith('locked@')));
      const locals = local.filter((e) => e.name === 'loc');
      assert.equal(locals.length, 6, '3 nodes × 2 slots');
      assert.equal(spy.calls.length, 0);
    });
  });

  it('SC-35 hook order: claim → beforeRun → handler → afterRun; afterRunError gets the (wrapped) error', async () => {
    await withManualCluster({ nodes: 1 }, async (cluster) => {
      const node = cluster.nodes[0]!;
      const s = node.rota.schedules;
      const order: string[] = [];
      node.rota.events.on('run:starting', (e) => order.push(`claimed:${e.name}`));
      const hooks = (tag: string) => ({
        beforeRun: () => void order.push(`before:${tag}`),
        afterRun: () => void order.push(`after:${tag}`),
        afterRunError: (_: unknown, err: Error) =>
          void order.push(`error:${tag}:${(err as { code?: string }).code ?? err.message}`),
      });
      await s.register(
        { name: 'ok', every: 3_600_000, startAt: 'now', hooks: hooks('ok') },
        () => void order.push('run:ok'),
      );
      await advance(cluster, 1);
      await s.register({ name: 'str', every: 3_600_000, startAt: 'now', hooks: hooks('str') }, () => {
        throw 'x';
      });
      await s.start();
      await advance(cluster, 100);
      const ok = order.filter((o) => o.endsWith(':ok') || o === 'run:ok');
      assert.deepEqual(ok, ['claimed:ok', 'before:ok', 'run:ok', 'after:ok']);
      const str = order.filter((o) => o.includes('str'));
      assert.deepEqual(str, ['claimed:str', 'before:str', 'error:str:ROTA_HANDLER_FAILED']);
    });
  });

  it('SC-37 trigger() adds one manual run now without moving nextRunAt; with a run active it waits', async () => {
    await withManualCluster({ nodes: 1 }, async (cluster) => {
      const node = cluster.nodes[0]!;
      const s = node.rota.schedules;
      const started = record([node], 'run:started');
      await s.register({ name: 'm', every: 60_000 }, (ctx) => work(node, 1000, ctx.signal));
      await s.start();
      const before = (await s.get('m')).nextRunAt;
      const req = await s.trigger('m');
      assert.equal(req.status, 'requested');
      await advance(cluster, 100);
      assert.equal(started.length, 1);
      assert.equal(started[0]?.runId, req.runId);
      assert.equal((await s.get('m')).nextRunAt, before);
      const second = await s.trigger('m');
      await advance(cluster, 500);
      assert.equal(started.length, 1, 'waits while a run is active (overlap skip)');
      assert.equal((await s.run('m', second.runId)).status, 'requested');
      await advance(cluster, 600);
      assert.equal(started.length, 2);
      assert.equal((await s.run('m', second.runId)).kind, 'manual');
      await rejectsWith(s.trigger('nope'), 'ROTA_SCHEDULE_NOT_FOUND');
    });
  });

  it('SC-41 a store outage over 5 slots: the newest runs late and one skipped record counts 4; with a 500 ms window all 5 are skipped', async () => {
    for (const window of [undefined, 500]) {
      await withManualCluster({ nodes: 1 }, async (cluster) => {
        const node = cluster.nodes[0]!;
        const s = node.rota.schedules;
        await s.register(
          { name: 'j', every: 1000, ...(window ? { catchUpWindow: window } : {}) },
          () => undefined,
        );
        await s.start();
        const t0 = cluster.clock!.now();
        await advance(cluster, 1100);
        cluster.partition(node);
        await advance(cluster, window ? 5500 : 5000, 100);
        cluster.heal(node);
        s.rescan();
        await advance(cluster, 50);
        const runs = await s.runs('j');
        const skipped = runs.filter((r) => r.status === 'skipped');
        assert.equal(skipped.length, 1);
        if (!window) {
          assert.deepEqual(skipped[0]?.skipped, {
            from: t0 + 2000,
            to: t0 + 5000,
            count: 4,
            reason: 'missed',
          });
          assert.equal(statusOf(runs, String(t0 + 6000)), 'succeeded');
        } else {
          assert.deepEqual(skipped[0]?.skipped, {
            from: t0 + 2000,
            to: t0 + 6000,
            count: 5,
            reason: 'missed',
          });
          assert.equal(runs.filter((r) => r.status === 'succeeded').length, 1);
          assert.equal((await s.get('j')).nextRunAt, t0 + 7000);
        }
      });
    }
  });

  it('SC-42 catchUp all runs 3 missed slots in slot order, back to back', async () => {
    await withManualCluster({ nodes: 1 }, async (cluster) => {
      const node = cluster.nodes[0]!;
      const s = node.rota.schedules;
      const now = cluster.clock!.now();
      const started = record([node], 'run:started');
      await s.register(
        { name: 'all', every: 1000, catchUp: 'all', startAt: now - 2500, allowPastStart: true },
        () => undefined,
      );
      await s.start();
      await advance(cluster, 100);
      assert.deepEqual(
        started.map((e) => e.slotAt),
        [now - 2500, now - 1500, now - 500],
      );
      assert.ok(
        started.every((e) => e.startedAt - now < 100),
        'back to back',
      );
    });
  });

  it('SC-43 a due schedule nobody can run is reported orphaned once; a node registering it catches up', async () => {
    await withManualCluster({ nodes: 2 }, async (cluster) => {
      const [n1, n2] = cluster.nodes as [(typeof cluster.nodes)[0], (typeof cluster.nodes)[0]];
      const orphaned = record(cluster.nodes, 'schedule:orphaned');
      await n1.rota.schedules.register({ name: 'nobody', every: 300 });
      await n1.rota.schedules.start({ monitorInterval: 200, interruptThreshold: 1000 });
      await advance(cluster, 900);
      assert.equal(orphaned.length, 0, 'not before interruptThreshold');
      await advance(cluster, 2000);
      assert.equal(orphaned.length, 1);
      await n2.rota.schedules.register({ name: 'nobody', every: 300 }, () => undefined);
      await n2.rota.schedules.start({ monitorInterval: 200, interruptThreshold: 1000 });
      await advance(cluster, 50);
      const runs = await n2.rota.schedules.runs('nobody');
      assert.equal(runs.filter((r) => r.status === 'succeeded').length, 1);
      const skipped = runs.find((r) => r.status === 'skipped');
      assert.ok((skipped?.skipped?.count ?? 0) >= 8, 'the missed slots are recorded');
      await advance(cluster, 1000);
      assert.equal(orphaned.length, 1, 'once');
    });
  });

  it('SC-44 a partitioned owner aborts with ROTA_SESSION_LOST, the slot re-runs elsewhere, its late completion is discarded', async () => {
    await withManualCluster({ nodes: 2, nodeOptions: { sessionTtl: 2000 } }, async (cluster) => {
      const [n1, n2] = cluster.nodes as [(typeof cluster.nodes)[0], (typeof cluster.nodes)[0]];
      let reason: unknown = null;
      let healed = false;
      const late = record([n1], 'run:late-completion');
      await n1.rota.schedules.register({ name: 'j', every: 3_600_000, startAt: 'now' }, async (ctx) => {
        await work(n1, 60_000, ctx.signal).catch(() => {
          reason = ctx.signal.reason;
        });
        while (!healed) await work(n1, 100);
      });
      await n1.rota.schedules.start({ monitorInterval: 500, interruptThreshold: 5000 });
      await advance(cluster, 100);
      await n2.rota.schedules.register({ name: 'j', every: 3_600_000, startAt: 'now' }, () => undefined);
      await n2.rota.schedules.start({ monitorInterval: 500, interruptThreshold: 5000 });
      cluster.partition(n1);
      await advance(cluster, 4000, 50);
      assert.equal((reason as { code?: string } | null)?.code, 'ROTA_SESSION_LOST');
      const runs = await n2.rota.schedules.runs('j');
      const first = runs.find((r) => r.attempt === 1);
      const second = runs.find((r) => r.attempt === 2);
      assert.equal(first?.status, 'interrupted');
      assert.equal(second?.status, 'succeeded');
      assert.equal(second?.owner, 'n2');
      cluster.heal(n1);
      healed = true;
      // The completion write waits out the jittered retry backoff the partition left behind
      // (0.2–5 s of cluster time).
      for (let t = 0; t < 15_000 && late.length === 0; t += 50) await advance(cluster, 50, 50);
      assert.equal(late.length, 1);
      assert.equal((await n2.rota.schedules.run('j', first!.runId)).status, 'interrupted');
    });
  });

  it('SC-46 a dynamic handler returning nextRunIn -5 logs a warning and is next due after defaultNextRunIn', async () => {
    await withManualCluster({ nodes: 1 }, async (cluster) => {
      const node = cluster.nodes[0]!;
      const s = node.rota.schedules;
      const invalid = record([node], 'schedule:invalid-next-run');
      await s.register({ name: 'd', dynamic: {}, defaultNextRunIn: 5000 }, () => ({ nextRunIn: -5 }));
      await s.start();
      await advance(cluster, 50);
      assert.equal(invalid.length, 1);
      assert.equal(invalid[0]?.value, -5);
      const info = await s.get('d');
      assert.equal(info.nextRunAt, info.lastRun!.endedAt + 5000);
    });
  });

  it('SC-47 a run past its timeout aborts and fails with ROTA_RUN_TIMEOUT, without a retry', async () => {
    await withManualCluster({ nodes: 1 }, async (cluster) => {
      const node = cluster.nodes[0]!;
      const s = node.rota.schedules;
      let abortedAt = 0;
      const t0 = cluster.clock!.now();
      await s.register({ name: 't', every: 3_600_000, startAt: 'now', timeout: 500 }, async (ctx) => {
        await work(node, 2000, ctx.signal).catch(() => {
          abortedAt = cluster.clock!.now() - t0;
        });
      });
      await s.start();
      await advance(cluster, 2500, 50);
      assert.ok(abortedAt >= 500 && abortedAt < 600, `aborted at ${abortedAt}`);
      const runs = await s.runs('t');
      assert.equal(runs.length, 1);
      assert.equal(runs[0]?.status, 'failed');
      assert.equal(runs[0]?.error?.code, 'ROTA_RUN_TIMEOUT');
    });
  });

  it('SC-48 retries run <slot>, <slot>.2, <slot>.3 and the last succeeds', async () => {
    await withManualCluster({ nodes: 1 }, async (cluster) => {
      const node = cluster.nodes[0]!;
      const s = node.rota.schedules;
      let calls = 0;
      const info = await s.register(
        {
          name: 'r',
          every: 3_600_000,
          startAt: 'now',
          retry: { maxAttempts: 3, backoff: { type: 'fixed', delay: 100 } },
        },
        () => {
          calls++;
          if (calls < 3) throw new Error(`fail ${calls}`);
        },
      );
      await s.start();
      await advance(cluster, 500);
      const slot = String(info.nextRunAt);
      const runs = await s.runs('r');
      assert.deepEqual(runs.map((r) => [r.runId, r.status]).sort(), [
        [slot, 'failed'],
        [`${slot}.2`, 'failed'],
        [`${slot}.3`, 'succeeded'],
      ]);
    });
  });

  it('rota/testing helpers: an elector gate, advanceUntil and nextRunEnd', async () => {
    await withManualCluster({ nodes: 1 }, async (cluster) => {
      const node = cluster.nodes[0]!;
      const s = node.rota.schedules;
      let leader = false;
      const elector = fakeElector(() => leader);
      let runs = 0;
      await s.register({ name: 'g', every: 500 }, () => {
        runs++;
      });
      await s.start({ elector });
      await advance(cluster, 1200);
      assert.equal(runs, 0, 'no run while the elector says no');
      assert.ok(elector.calls > 0);
      leader = true;
      let endedRun: { status: string } | null = null;
      void nextRunEnd(node.rota, 'g').then((r) => {
        endedRun = r;
      });
      const took = await advanceUntil(cluster, () => runs > 0, { step: 50, max: 5000 });
      assert.ok(took <= 1500, `ran ${took} ms after the gate opened`);
      await advanceUntil(cluster, () => endedRun !== null, { max: 1000 });
      assert.equal((endedRun as { status: string } | null)?.status, 'succeeded');
    });
  });
});
