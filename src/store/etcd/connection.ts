/**
 * One etcd client (the `etcd3` package over gRPC) with Rota's failure policy:
 * - every unary request has a deadline (`timeout`);
 * - the driver's own retries are off, because a retried txn could run twice or report the wrong
 *   branch; reads are retried here on transient failures, writes only when the request provably
 *   never left this process;
 * - a per-host circuit breaker skips a dead endpoint for one second, so with several endpoints the
 *   next call goes to a live one.
 */
import { ConsecutiveBreaker, circuitBreaker, handleWhen, noop } from 'cockatiel';
import { Etcd3, isRecoverableError } from 'etcd3';
import { isTransient, mapEtcdError, wasNotSent } from './errors.js';
import type { EtcdSettings } from './settings.js';

const RETRY_DELAYS = [25, 100, 250];

const delay = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export class EtcdConnection {
  readonly client: Etcd3;
  readonly settings: EtcdSettings;

  constructor(settings: EtcdSettings) {
    this.settings = settings;
    this.client = new Etcd3({
      hosts: settings.hosts.map((h) => `http://${h}`),
      defaultCallOptions: (context) => (context.isStream ? {} : { deadline: Date.now() + settings.timeout }),
      faultHandling: {
        global: noop,
        host: () =>
          circuitBreaker(handleWhen(isRecoverableError), {
            halfOpenAfter: 1_000,
            breaker: new ConsecutiveBreaker(3),
          }),
      },
      grpcOptions: {
        // Big ranges (a page of queue records) must not hit gRPC's 4 MiB default.
        'grpc.max_receive_message_length': 256 * 1024 * 1024,
        'grpc.max_send_message_length': 256 * 1024 * 1024,
        // Notice a dead peer on idle watch streams (etcd refuses pings more often than every 5 s).
        'grpc.keepalive_time_ms': 10_000,
        'grpc.keepalive_timeout_ms': 5_000,
        'grpc.initial_reconnect_backoff_ms': 100,
        'grpc.max_reconnect_backoff_ms': 1_000,
      },
    });
  }

  /** Run an idempotent request, retrying transient failures a few times. */
  async read<T>(what: string, fn: () => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await fn();
      } catch (err) {
        const wait = RETRY_DELAYS[attempt];
        if (wait === undefined || !isTransient(err)) throw mapEtcdError(err, what, false);
        await delay(wait);
      }
    }
  }

  /** Run a write, retrying only failures that prove the request was never sent. */
  async write<T>(what: string, fn: () => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await fn();
      } catch (err) {
        const wait = RETRY_DELAYS[attempt];
        if (wait === undefined || !isTransient(err) || !wasNotSent(err)) throw mapEtcdError(err, what, true);
        await delay(wait);
      }
    }
  }

  close(): void {
    this.client.close();
  }
}
