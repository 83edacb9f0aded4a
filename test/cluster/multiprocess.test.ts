/**
 * Issue 7's multi-process test: three processes campaign; SIGKILL the leader; a new leader is
 * elected with a greater fencing token. The failover time is printed (not asserted).
 */
import { it } from 'node:test';
import { sharedStoreUrl, spawnChild, uniqueNamespace } from '../support/multiprocess.js';
import { assert } from '../support/scenarios.js';

const store = sharedStoreUrl();
const SESSION_TTL = 2000;

it('three processes campaign; after SIGKILL of the leader a successor leads with a greater token', {
  skip: store
    ? false
    : 'no multi-process store backend in this build (needs sqlite, postgres, redis or etcd)',
  timeout: 60_000,
}, async () => {
  const namespace = uniqueNamespace('mp-election');
  const children = ['p1', 'p2', 'p3'].map((id) =>
    spawnChild(id, new URL('./children/campaigner.ts', import.meta.url).pathname, {
      ROTA_STORE: store as string,
      ROTA_NAMESPACE: namespace,
      ROTA_NODE_ID: id,
      ROTA_SESSION_TTL: String(SESSION_TTL),
    }),
  );
  try {
    await Promise.all(children.map((c) => c.waitFor(/^READY /)));
    const first = await Promise.race(
      children.map((c) => c.waitFor(/^LEADER /).then((line) => ({ c, line }))),
    );
    const [, , firstToken] = first.line.split(' ');
    const killedAt = Date.now();
    first.c.kill('SIGKILL');
    await first.c.exited;
    const survivors = children.filter((c) => c !== first.c);
    const next = await Promise.race(
      survivors.map((c) => c.waitFor(/^LEADER /, 30_000).then((line) => ({ c, line }))),
    );
    const failoverMs = Date.now() - killedAt;
    const [, nodeId, nextToken] = next.line.split(' ');
    assert.notEqual(nodeId, first.c.name);
    assert.ok(Number(nextToken) > Number(firstToken), `token ${nextToken} > ${firstToken}`);
    console.log(
      `# leader failover after SIGKILL: ${failoverMs} ms (session TTL ${SESSION_TTL} ms, store ${store?.split(':')[0]})`,
    );
  } finally {
    for (const c of children) c.kill('SIGKILL');
    await Promise.all(children.map((c) => c.exited));
  }
});
