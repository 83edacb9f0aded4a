/**
 * PostgreSQL store: connections that break without an answer from the server (the network, not
 * the server, fails). A loopback TCP proxy between the store and the server drops every socket
 * on demand. A write in flight is then ROTA_STORE_UNAVAILABLE with `detail.ambiguous: true` (it
 * may have been applied: here it was), reads are re-sent, and the store works again afterwards.
 */
import assert from 'node:assert/strict';
import { createServer, type Server, type Socket, connect as tcpConnect } from 'node:net';
import { describe, it } from 'node:test';
import { isRotaError } from '../../src/errors.js';
import { dec, delay, enc, eventually, take } from '../../src/store/conformance/helpers.js';
import { openStore } from '../../src/store/open.js';
import { needsServer, PG_URL, rawClient, withSchema } from './helpers.js';

/** A TCP proxy to the test server that can cut every connection through it. */
class TcpProxy {
  readonly #server: Server;
  readonly #sockets = new Set<Socket>();
  port = 0;

  constructor(target: URL) {
    this.#server = createServer((client) => {
      const upstream = tcpConnect(Number(target.port || 5432), target.hostname);
      for (const s of [client, upstream]) {
        this.#sockets.add(s);
        s.on('error', () => undefined);
        s.on('close', () => this.#sockets.delete(s));
      }
      client.pipe(upstream);
      upstream.pipe(client);
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
    });
  }

  async listen(): Promise<void> {
    await new Promise<void>((resolve) => this.#server.listen(0, '127.0.0.1', resolve));
    const address = this.#server.address();
    this.port = typeof address === 'object' && address ? address.port : 0;
  }

  /** Reset every connection through the proxy (no answer reaches either side). */
  cut(): number {
    const n = this.#sockets.size;
    for (const s of this.#sockets) s.resetAndDestroy();
    return n;
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}

describe('postgres network loss', needsServer, () => {
  it('a write cut off from its answer is ambiguous; reads are re-sent; the store recovers', {
    timeout: 60_000,
  }, async () => {
    const target = new URL(PG_URL as string);
    const proxy = new TcpProxy(target);
    await proxy.listen();
    const via = new URL(target.href);
    via.host = `127.0.0.1:${proxy.port}`;
    try {
      await withSchema(async (open, schema) => {
        const direct = await open();
        const store = await open({ poolSize: 2 });
        await direct.put('nl/start', enc('0'));
        // The proxied client: same schema, connections through the proxy.
        const proxied = await openStore(via.href, { schema, poolSize: 2 });
        try {
          const watch = proxied.watch('nl/', { fromRevision: (await direct.status()).revision + 1 });

          // Hold the revision counter so the proxied put waits inside the server.
          const blocker = await rawClient(schema);
          await blocker.query('BEGIN');
          await blocker.query('SELECT revision FROM meta WHERE id = 1 FOR UPDATE');
          const put = proxied.put('nl/ambiguous', enc('maybe'));
          const outcome = put.then(
            () => 'applied' as const,
            (err: unknown) => err,
          );
          await delay(200);
          assert.ok(proxy.cut() > 0, 'the proxy had connections to cut');
          const error = await outcome;
          assert.ok(isRotaError(error, 'ROTA_STORE_UNAVAILABLE'), `got ${String(error)}`);
          assert.equal(error.detail.ambiguous, true);
          await blocker.query('COMMIT');
          await blocker.end();
          // The server finishes the write its client gave up on (it only finds the socket gone when
          // it answers): the caller must re-read to learn the outcome.
          await eventually(
            async () => dec((await direct.get('nl/ambiguous')).kv?.value ?? enc('')) === 'maybe',
            10_000,
            'the ambiguous write to land',
          );

          // Reads are re-sent after a cut; the store keeps working.
          proxy.cut();
          assert.equal(dec((await proxied.get('nl/start')).kv?.value ?? enc('')), '0');
          const after = await proxied.put('nl/after', enc('1'));
          await store.put('nl/other', enc('2'));
          // The watch reconnected and caught up: the landed write, then the later ones, in order.
          const events = await take(watch, 3, 10_000);
          assert.deepEqual(
            events.map((e) => e.kv.key),
            ['nl/ambiguous', 'nl/after', 'nl/other'],
          );
          assert.equal(events[1]?.revision, after.revision);
          await watch.return?.();
        } finally {
          await proxied.close();
        }
      });
    } finally {
      await proxy.close();
    }
  });
});
