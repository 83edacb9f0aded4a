/** schedules.md §2.4: slot arithmetic reference vectors (SC-26) and the pure planner. */
import { describe, it } from 'node:test';
import { effective, planClaim } from '../../src/schedules/plan.js';
import type { DefRecord, StoredOptions } from '../../src/schedules/records.js';
import { dueSlots, firstSlot, type SlotBasis, slotsAfter, type Trigger } from '../../src/schedules/slots.js';
import { dayNumber, localToInstant } from '../../src/schedules/tz.js';
import { parseGoDuration, splitCronTz } from '../../src/schedules/validate.js';
import { assert, withManualCluster } from '../support/scenarios.js';

const iso = (ms: number[]) => ms.map((m) => new Date(m).toISOString());
const at = (s: string) => Date.parse(s);
const basis = (
  trigger: Trigger,
  anchor: string,
  timezone = 'UTC',
  stopAt: number | null = null,
): SlotBasis => ({
  trigger,
  timezone,
  anchor: at(anchor),
  stopAt,
});
const first5 = (b: SlotBasis) => {
  const f = firstSlot(b);
  assert.ok(f !== null, 'a first slot');
  return iso([f, ...slotsAfter(b, f, 4)]);
};

describe('schedules slot arithmetic', () => {
  it('SC-26 cron, @every, everyRandom, daily, weekly and monthly match reference vectors (DST, February)', async () => {
    await withManualCluster({ nodes: 1 }, async (cluster) => {
      const s = cluster.nodes[0]!.rota.schedules;
      const startAt = at('2026-03-06T12:00:00Z');
      await s.register({ name: 'ny', cron: 'CRON_TZ=America/New_York 0 9 * * *', startAt });
      await s.register({ name: 'utc', cron: '0 9 * * *', startAt });
      await s.register({ name: 'hourly', cron: '@every 1h', startAt });
      await s.register({ name: 'random', everyRandom: { min: 1000, max: 2000 } });
      await s.register({ name: 'daily', daily: { at: '02:30' }, timezone: 'America/New_York', startAt });
      await s.register({
        name: 'weekly',
        weekly: { interval: 2, weekdays: [1, 5], at: '10:00' },
        startAt: at('2026-01-07T00:00:00Z'),
      });
      await s.register({
        name: 'monthly',
        monthly: { days: [-1], at: '00:00' },
        startAt: at('2028-01-15T00:00:00Z'),
      });
      assert.deepEqual(iso(await s.nextRuns('ny', 5)), [
        '2026-03-06T14:00:00.000Z',
        '2026-03-07T14:00:00.000Z',
        '2026-03-08T13:00:00.000Z', // EDT from 8 March
        '2026-03-09T13:00:00.000Z',
        '2026-03-10T13:00:00.000Z',
      ]);
      assert.deepEqual(iso(await s.nextRuns('utc', 5)), [
        '2026-03-07T09:00:00.000Z',
        '2026-03-08T09:00:00.000Z',
        '2026-03-09T09:00:00.000Z',
        '2026-03-10T09:00:00.000Z',
        '2026-03-11T09:00:00.000Z',
      ]);
      assert.deepEqual(iso(await s.nextRuns('hourly', 3)), [
        '2026-03-06T12:00:00.000Z',
        '2026-03-06T13:00:00.000Z',
        '2026-03-06T14:00:00.000Z',
      ]);
      const random = await s.nextRuns('random', 5);
      const registered = at('2026-01-01T00:00:00Z');
      assert.ok(random[0]! >= registered + 1000 && random[0]! < registered + 2000, 'first gap in [min, max)');
      for (let i = 1; i < random.length; i++) {
        const gap = random[i]! - random[i - 1]!;
        assert.ok(gap >= 1000 && gap < 2000, `gap ${gap} in [1000, 2000)`);
      }
      assert.deepEqual(iso(await s.nextRuns('daily', 4)), [
        '2026-03-07T07:30:00.000Z',
        '2026-03-08T07:00:00.000Z', // 02:30 does not exist: the first instant after the gap (03:00 EDT)
        '2026-03-09T06:30:00.000Z',
        '2026-03-10T06:30:00.000Z',
      ]);
      assert.deepEqual(iso(await s.nextRuns('weekly', 5)), [
        '2026-01-09T10:00:00.000Z', // Friday of the anchor's week
        '2026-01-19T10:00:00.000Z', // two weeks later: Monday, Friday
        '2026-01-23T10:00:00.000Z',
        '2026-02-02T10:00:00.000Z',
        '2026-02-06T10:00:00.000Z',
      ]);
      assert.deepEqual(iso(await s.nextRuns('monthly', 4)), [
        '2028-01-31T00:00:00.000Z',
        '2028-02-29T00:00:00.000Z', // leap year
        '2028-03-31T00:00:00.000Z',
        '2028-04-30T00:00:00.000Z',
      ]);
    });
  });

  it('daily and cron agree across both DST transitions; fall-back runs once at the first occurrence', () => {
    const anchor = '2026-01-01T00:00:00Z';
    for (const time of ['01:30', '02:30', '09:00']) {
      const [h, m] = time.split(':').map(Number) as [number, number];
      const daily = basis(
        { kind: 'daily', interval: 1, at: [h * 3600 + m * 60] },
        anchor,
        'America/New_York',
      );
      const cron = basis(
        { kind: 'cron', expr: `${m} ${h} * * *`, seconds: null },
        anchor,
        'America/New_York',
      );
      assert.deepEqual(
        iso(slotsAfter(daily, at(anchor), 400)),
        iso(slotsAfter(cron, at(anchor), 400)),
        `daily ${time} = cron`,
      );
    }
    const fallBack = basis(
      { kind: 'daily', interval: 1, at: [5400] },
      '2026-10-31T12:00:00Z',
      'America/New_York',
    );
    assert.deepEqual(first5(fallBack).slice(0, 2), ['2026-11-01T05:30:00.000Z', '2026-11-02T06:30:00.000Z']);
  });

  it('monthly skips missing days; intervals count periods from the anchor', () => {
    assert.deepEqual(
      first5(basis({ kind: 'monthly', interval: 1, days: [31], at: [0] }, '2026-01-15T00:00:00Z')),
      [
        '2026-01-31T00:00:00.000Z',
        '2026-03-31T00:00:00.000Z',
        '2026-05-31T00:00:00.000Z',
        '2026-07-31T00:00:00.000Z',
        '2026-08-31T00:00:00.000Z',
      ],
    );
    assert.deepEqual(
      first5(basis({ kind: 'monthly', interval: 2, days: [1, -1], at: [3600] }, '2026-01-15T00:00:00Z')),
      [
        '2026-01-31T01:00:00.000Z',
        '2026-03-01T01:00:00.000Z',
        '2026-03-31T01:00:00.000Z',
        '2026-05-01T01:00:00.000Z',
        '2026-05-31T01:00:00.000Z',
      ],
    );
    assert.deepEqual(first5(basis({ kind: 'daily', interval: 3, at: [0, 43200] }, '2026-01-01T06:00:00Z')), [
      '2026-01-01T12:00:00.000Z',
      '2026-01-04T00:00:00.000Z',
      '2026-01-04T12:00:00.000Z',
      '2026-01-07T00:00:00.000Z',
      '2026-01-07T12:00:00.000Z',
    ]);
    assert.deepEqual(
      first5(
        basis(
          { kind: 'daily', interval: 1, at: [0] },
          '2026-01-01T00:00:00Z',
          'UTC',
          at('2026-01-03T00:00:00Z'),
        ),
      ),
      ['2026-01-01T00:00:00.000Z', '2026-01-02T00:00:00.000Z', '2026-01-03T00:00:00.000Z'],
    );
  });

  it('every slots derive from the stored anchor, not from the asking time; once lists instants', () => {
    const b = basis({ kind: 'every', every: 5000, origin: null }, '2026-01-01T00:00:00Z');
    assert.deepEqual(iso(slotsAfter(b, at('2026-01-01T00:00:01.700Z'), 2)), [
      '2026-01-01T00:00:05.000Z',
      '2026-01-01T00:00:10.000Z',
    ]);
    assert.deepEqual(iso(slotsAfter(b, at('2026-01-01T00:00:03.100Z'), 1)), ['2026-01-01T00:00:05.000Z']);
    const aligned = basis({ kind: 'every', every: 60_000, origin: 0 }, '2026-01-01T00:00:30Z');
    assert.deepEqual(first5(aligned).slice(0, 2), ['2026-01-01T00:01:00.000Z', '2026-01-01T00:02:00.000Z']);
    const once = basis(
      { kind: 'once', at: [at('2026-01-02T00:00:00Z'), at('2025-12-01T00:00:00Z'), 'now'] },
      '2026-01-01T00:00:00Z',
    );
    assert.deepEqual(first5(once), ['2026-01-01T00:00:00.000Z', '2026-01-02T00:00:00.000Z']);
    const due = dueSlots(b, at('2026-01-01T00:00:00Z'), at('2026-01-01T00:00:12Z'));
    assert.equal(due.count, 3);
  });

  it('time zone helpers, cron prefixes and @every durations', () => {
    assert.equal(
      localToInstant(dayNumber(2026, 3, 8), 2 * 3600 + 1800, 'America/New_York'),
      at('2026-03-08T07:00:00Z'),
    );
    assert.equal(
      localToInstant(dayNumber(2026, 11, 1), 3600 + 1800, 'America/New_York'),
      at('2026-11-01T05:30:00Z'),
    );
    assert.equal(localToInstant(dayNumber(2026, 6, 1), 0, 'Asia/Kolkata'), at('2026-05-31T18:30:00Z'));
    assert.deepEqual(splitCronTz('TZ=Europe/Berlin  0 9 * * *'), { tz: 'Europe/Berlin', expr: '0 9 * * *' });
    assert.deepEqual(splitCronTz('0 9 * * *'), { tz: null, expr: '0 9 * * *' });
    assert.equal(parseGoDuration('1h30m'), 5_400_000);
    assert.equal(parseGoDuration('250ms'), 250);
    assert.equal(parseGoDuration('1x'), null);
  });

  it('the planner runs the newest due slot and records one skipped range (catch-up latest / window / all)', () => {
    const options: StoredOptions = {
      overlap: null,
      catchUp: null,
      catchUpWindow: null,
      timeout: null,
      stallTimeout: null,
      retry: null,
      maxInterruptions: null,
      keepRuns: null,
      limitRuns: null,
      intervalFromCompletion: false,
      startAt: null,
      allowPastStart: false,
      stopAt: null,
      failureBackoff: null,
      defaultNextRunIn: null,
    };
    const def: DefRecord = {
      v: 1,
      name: 'j',
      tags: [],
      trigger: { kind: 'every', every: 1000, origin: null },
      timezone: 'UTC',
      options,
      description: '',
      hash: 'h',
      anchor: 1000,
      state: 'active',
      exhaustedBy: null,
      nextRunAt: 1000,
      pending: [],
      currentRuns: [],
      runsStarted: 0,
      lastRun: null,
      failures: 0,
      history: [],
      createdAt: 0,
      updatedAt: 0,
      opId: 'x',
    };
    const latest = planClaim(def, 5200, effective(options), [], Math.random);
    assert.equal(latest?.run?.slotAt, 5000);
    assert.deepEqual(latest?.skip, { from: 1000, to: 4000, count: 4, reason: 'missed' });
    assert.equal(latest?.def.nextRunAt, 6000);
    const windowed = planClaim(def, 5600, effective({ ...options, catchUpWindow: 500 }), [], Math.random);
    assert.equal(windowed?.run, null);
    assert.deepEqual(windowed?.skip, { from: 1000, to: 5000, count: 5, reason: 'missed' });
    assert.equal(windowed?.def.nextRunAt, 6000);
    const all = planClaim(def, 3500, effective({ ...options, catchUp: 'all' }), [], Math.random);
    assert.equal(all?.run?.slotAt, 1000);
    assert.equal(all?.skip, null);
    assert.equal(all?.def.nextRunAt, 2000);
    assert.equal(planClaim(def, 999, effective(options), [], Math.random), null);
  });
});
