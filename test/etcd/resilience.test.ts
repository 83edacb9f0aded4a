/**
 * etcd store against failures, on a dedicated etcd (never the shared one): a dropped connection,
 * a killed and restarted server, and etcd's own compaction. Watchers resume from their revision
 * with no gap and no duplicate; lease keep-alives recover, or report the lease lost.
 */
import { after, before, describe, it } from 'node:test';
import {
  assert,
  delay,
  eventually,
  expectQuiet,
  rejectsWith,
  take,
} from '../../src/store/conformance/helpers.js';
import { openStore } from '../../src/store/open.js';
import type { Store } from '../../src/store/port.js';
import { CuttableProxy, EtcdServer, etcdInstalled } from './support/server.js';

const enc = (s: string) => new TextEncoder().encode(s);

const available = etcdInstalled();
if (!available) {
  const message = 'etcd resilience tests need the etcd binary on the PATH (npm test installs it as root)';
  if (process.env.CI === 'true') throw new Error(`CI: ${message}`);
  console.warn(`\n!!! SKIPPING: ${message}\n`);
}

describe('etcd store resilience', { skip: !available, timeout: 90_000 }, () => {
  const server = new EtcdServer();
  let proxy: CuttableProxy;
  const clients: Store[] = [];
  const open = async (url: string, options: Record<string, unknown> = {}) => {
    const store = await openStore(url, { prefix: 'res/', timeout: 1500, ...options });
    clients.push(store);
    return store;
  };

  before(async () => {
    await server.start();
    proxy = new CuttableProxy(server.clientPort);
    await proxy.start();
  });
  after(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await proxy.close();
    await server.destroy();
  });

  it('a watch resumes after its connection drops: exactly the missed events, in order', async () => {
    const watcher = await open(proxy.url);
    const writer = await open(server.url);
    const start = (await writer.status()).revision + 1;
    const watch = watcher.watch('cut/', { fromRevision: start });
    for (let i = 0; i < 3; i++) await writer.put(`cut/${i}`, enc(String(i)));
    const seen = await take(watch, 3);
    proxy.cut();
    const missed: number[] = [];
    for (let i = 3; i < 6; i++) missed.push((await writer.put(`cut/${i}`, enc(String(i)))).revision);
    missed.push((await writer.delete('cut/0')).revision);
    // While cut off, calls fail as unavailable, and a write says whether it may have been applied.
    const err = await rejectsWith(watcher.put('cut/x', enc('x')), 'ROTA_STORE_UNAVAILABLE');
    assert.equal(typeof err.detail.ambiguous, 'boolean');
    await delay(300);
    proxy.resume();
    const resumed = await take(watch, 4, 15_000);
    assert.deepEqual(
      resumed.map((e) => e.revision),
      missed,
    );
    assert.ok((resumed[0]?.revision ?? 0) > (seen[2]?.revision ?? 0));
    assert.equal(resumed[3]?.type, 'delete');
    await expectQuiet(watch, 200);
    await watch.return?.();
  });

  it('after an etcd restart: watches resume, live leases and claims recover, expired leases are lost', async () => {
    const a = await open(server.url);
    const b = await open(server.url);
    const long = await a.grant(15_000);
    const short = await a.grant(1_000);
    await a.put('rs/long', enc('l'), { lease: long.id });
    await a.put('rs/short', enc('s'), { lease: short.id });
    const start = (await a.status()).revision + 1;
    const watch = a.watch('rs/w/', { fromRevision: start });
    const first = await a.put('rs/w/1', enc('1'));
    assert.equal((await take(watch, 1))[0]?.revision, first.revision);
    await a.enqueue([{ id: 't1', queue: 'q', payload: '1' }]);
    const [claimed] = (await a.claim({ queue: 'q', owner: 'w', limit: 1, leaseTtl: 60_000, start: true }))
      .items;
    assert.ok(claimed);

    await server.kill();
    await rejectsWith(a.keepAlive(long.id), 'ROTA_STORE_UNAVAILABLE');
    await rejectsWith(a.get('rs/long'), 'ROTA_STORE_UNAVAILABLE');
    await delay(1_500);
    await server.start();

    // The long lease is kept alive again once etcd is back.
    const renewed = await eventually(
      async () =>
        a.keepAlive(long.id).catch((e) => (e.code === 'ROTA_STORE_UNAVAILABLE' ? null : Promise.reject(e))),
      15_000,
      'keepAlive to succeed after the restart',
    );
    assert.equal(renewed.ttl, 15_000);
    assert.ok((await a.get('rs/long')).kv);
    // The short one is not kept alive: etcd expires it (by its own clock) and says so.
    await eventually(async () => (await a.leaseInfo(short.id)) === null, 10_000, 'the short lease to expire');
    await rejectsWith(a.keepAlive(short.id), 'ROTA_LEASE_NOT_FOUND');
    assert.equal((await a.get('rs/short')).kv, null);

    // The watch picks up where it was: the next event only.
    const second = await b.put('rs/w/2', enc('2'));
    const [next] = await take(watch, 1, 15_000);
    assert.equal(next?.revision, second.revision);
    await watch.return?.();

    // The claim made before the restart is still fenced by its token.
    const [stale] = await b.settle([
      { op: 'complete', id: 't1', token: (claimed.token as number) - 1, owner: 'w' },
    ]);
    assert.equal(stale?.status, 'stale');
    const [done] = await b.settle([{ op: 'complete', id: 't1', token: claimed.token as number, owner: 'w' }]);
    assert.equal(done?.status, 'ok');
  });

  it("etcd's own compaction: a watch from before it, or resuming behind it, fails with ROTA_COMPACTED", async () => {
    const store = await open(server.url, { physicalCompaction: true, prefix: 'cmp/' });
    const behind = await open(proxy.url, { prefix: 'cmp/' });
    const start = (await store.status()).revision + 1;
    const lagging = behind.watch('c/', { fromRevision: start });
    const revs: number[] = [];
    for (let i = 0; i < 4; i++) revs.push((await store.put(`c/${i}`, enc(String(i)))).revision);
    await take(lagging, 4);
    proxy.cut();
    for (let i = 4; i < 8; i++) revs.push((await store.put(`c/${i}`, enc(String(i)))).revision);
    await store.compact(revs[6] as number);
    proxy.resume();
    // The lagging watch was at revs[3] + 1, now compacted away by etcd itself.
    await rejectsWith(take(lagging, 1, 15_000), 'ROTA_COMPACTED');
    const fresh = store.watch('c/', { fromRevision: revs[1] as number });
    await rejectsWith(fresh.next(), 'ROTA_COMPACTED');
    assert.ok((await store.status()).compactRevision >= (revs[6] as number));
    const ok = store.watch('c/', { fromRevision: (revs[6] as number) + 1 });
    assert.equal((await take(ok, 1))[0]?.kv.key, 'c/7');
    await ok.return?.();
  });
});
