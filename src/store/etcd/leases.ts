/**
 * Leases are etcd's own: etcd's leader clock expires them and deletes their keys in one revision.
 * Ids are etcd's 64-bit ids in lowercase hex (as etcdctl prints them). A TTL is what etcd granted,
 * which may exceed the request: etcd's minimum TTL is 1.5 × its election timeout, rounded up to a
 * second (2 s with etcd's defaults).
 */
import type { ILeaseKeepAliveResponse } from 'etcd3';
import { LeaseNotFoundError, StoreUnavailableError } from '../../errors.js';
import { compareKeys } from '../keys.js';
import type { Lease, LeaseInfo } from '../port.js';
import { leaseFromWire, leaseToWire, num } from './codec.js';
import type { EtcdConnection } from './connection.js';
import { mapEtcdError } from './errors.js';
import type { Layout } from './layout.js';

function notFound(id: string): never {
  throw new LeaseNotFoundError(`lease ${id} not found (expired or revoked)`, { detail: { lease: id } });
}

export class EtcdLeases {
  readonly #conn: EtcdConnection;
  readonly #layout: Layout;

  constructor(conn: EtcdConnection, layout: Layout) {
    this.#conn = conn;
    this.#layout = layout;
  }

  async grant(ttlMs: number): Promise<Lease> {
    const res = await this.#conn.write('grant', () =>
      this.#conn.client.leaseClient.leaseGrant({ TTL: Math.ceil(ttlMs / 1000) }),
    );
    if (res.error) throw mapEtcdError(new Error(res.error), 'grant', true);
    return { id: leaseFromWire(res.ID) as string, ttl: num(res.TTL, 'ttl') * 1000 };
  }

  /**
   * Renew once over a keep-alive stream opened for the call (etcd has no unary renew). etcd answers
   * TTL 0 for a lease that is gone.
   */
  async keepAlive(id: string): Promise<Lease> {
    const wire = leaseToWire(id);
    if (wire === null) notFound(id);
    const res = await this.#conn.write('keepAlive', () => this.#renewOnce(wire));
    const ttl = num(res.TTL, 'ttl');
    if (ttl <= 0) notFound(id);
    return { id, ttl: ttl * 1000 };
  }

  async #renewOnce(wire: string): Promise<ILeaseKeepAliveResponse> {
    const stream = await this.#conn.client.leaseClient.leaseKeepAlive();
    return new Promise<ILeaseKeepAliveResponse>((resolve, reject) => {
      let settled = false;
      const finish = (fn: () => void) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        // Half-close before cancelling: the driver treats an error on a still-writable stream as
        // a broken connection and would reset every stream of this host.
        stream.end();
        stream.cancel();
        fn();
      };
      const timer = setTimeout(
        () =>
          finish(() =>
            reject(
              new StoreUnavailableError('keepAlive: etcd did not answer in time', {
                detail: { ambiguous: true },
              }),
            ),
          ),
        this.#conn.settings.timeout,
      );
      stream.on('data', (res) => finish(() => resolve(res)));
      stream.on('error', (err) => finish(() => reject(err)));
      stream.on('end', () => finish(() => reject(new Error('keep-alive stream ended'))));
      stream.write({ ID: wire });
    });
  }

  async revoke(id: string): Promise<boolean> {
    const wire = leaseToWire(id);
    if (wire === null) return false;
    try {
      await this.#conn.write('revoke', () => this.#conn.client.leaseClient.leaseRevoke({ ID: wire }));
      return true;
    } catch (err) {
      if (err instanceof LeaseNotFoundError) return false;
      throw err;
    }
  }

  async info(id: string): Promise<LeaseInfo | null> {
    const wire = leaseToWire(id);
    if (wire === null) return null;
    const res = await this.#conn.read('leaseInfo', () =>
      this.#conn.client.leaseClient.leaseTimeToLive({ ID: wire, keys: true }),
    );
    const remaining = num(res.TTL, 'ttl');
    if (remaining < 0) return null;
    const prefix = this.#layout.kvPrefix;
    const keys = res.keys
      .filter((k) => k.length >= prefix.length && k.subarray(0, prefix.length).equals(prefix))
      .map((k) => k.subarray(prefix.length).toString('utf8'))
      .sort(compareKeys);
    // etcd reports whole seconds left, rounded down.
    return { id, ttl: num(res.grantedTTL, 'ttl') * 1000, remaining: remaining * 1000, keys };
  }
}
