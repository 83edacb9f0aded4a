/**
 * Map etcd and gRPC failures onto Rota's error catalog. Transient trouble (no connection, leader
 * change, deadline) is `ROTA_STORE_UNAVAILABLE`, marked ambiguous when a write may have been
 * applied; everything else is `ROTA_STORE_ERROR`. The driver error is kept as `cause`.
 */
import { isBrokenCircuitError } from 'cockatiel';
import { isRecoverableError } from 'etcd3';
import {
  CompactedError,
  LeaseNotFoundError,
  PayloadTooLargeError,
  RotaError,
  StoreError,
  StoreUnavailableError,
} from '../../errors.js';

// gRPC status codes worth a retry (UNKNOWN is what a dropped HTTP/2 stream often reports).
const TRANSIENT_CODES = new Set([1, 2, 4, 8, 10, 13, 14]);
// Messages proving the request never left this process, so retrying a write is safe.
const NOT_SENT =
  /No connection established|ECONNREFUSED|Failed to connect|EHOSTUNREACH|Name resolution failed/i;

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** True when the failure is transient (worth retrying later). */
export function isTransient(err: unknown): boolean {
  if (err instanceof RotaError) return err.code === 'ROTA_STORE_UNAVAILABLE';
  if (isBrokenCircuitError(err)) return true;
  if (err instanceof Error && isRecoverableError(err)) return true;
  const code = (err as { code?: unknown })?.code;
  if (typeof code === 'number' && TRANSIENT_CODES.has(code)) return true;
  return /etcdserver: (leader changed|no leader|request timed out|too many requests)|Connection dropped|ECONNRESET|stream ended|Channel closed/i.test(
    messageOf(err),
  );
}

/** True when the request certainly never reached etcd (a write may then be retried). */
export function wasNotSent(err: unknown): boolean {
  return isBrokenCircuitError(err) || NOT_SENT.test(messageOf(err));
}

/** Convert any driver failure of `what` into a RotaError. */
export function mapEtcdError(err: unknown, what: string, write: boolean): RotaError {
  if (err instanceof RotaError) return err;
  const message = messageOf(err);
  if (/requested lease not found/.test(message)) {
    return new LeaseNotFoundError(`${what}: the lease does not exist (expired or revoked)`, { cause: err });
  }
  if (/required revision has been compacted/.test(message)) {
    return new CompactedError(`${what}: etcd compacted the requested revision`, { cause: err });
  }
  if (/request is too large|received message larger than max/.test(message)) {
    return new PayloadTooLargeError(
      `${what}: the request is larger than etcd accepts (--max-request-bytes)`,
      {
        cause: err,
        detail: { field: 'value' },
      },
    );
  }
  if (isTransient(err)) {
    const ambiguous = write && !wasNotSent(err);
    return new StoreUnavailableError(`${what}: etcd is unreachable: ${message}`, {
      cause: err,
      detail: { ambiguous },
    });
  }
  return new StoreError(`${what}: etcd failed: ${message}`, { cause: err });
}
