/**
 * Leases held through the low-level API (`tasks.claim`, `tasks.resolving`, `completions`): kept
 * alive by one batched {@link RenewLoop} per lease TTL until the holder settles, so a live holder
 * never loses a claim by accident. A `stale` or `cancelled` renewal ends the hold.
 */
import type { RotaContext } from '../core/context.js';
import type { RenewEntry, RenewResult } from '../store/port.js';
import { RenewLoop } from './renewer.js';

export interface Held {
  readonly id: string;
  readonly token: number;
  readonly leaseTtl: number;
  /** Progress to send with the next renewal (JSON text). */
  pendingProgress: string | undefined;
  /** The store refused a renewal: the hold is over. */
  lost(status: 'stale' | 'cancelled'): void;
}

interface Group {
  loop: RenewLoop;
  held: Map<string, Held>;
}

export class HeldLeases {
  readonly #groups = new Map<number, Group>();
  #closed = false;

  constructor(private readonly ctx: RotaContext) {}

  add(held: Held): void {
    if (this.#closed) return;
    let group = this.#groups.get(held.leaseTtl);
    if (!group) {
      const map = new Map<string, Held>();
      group = {
        held: map,
        loop: new RenewLoop(this.ctx, held.leaseTtl, {
          collect: () => {
            const entries: RenewEntry[] = [];
            for (const h of map.values()) {
              entries.push(
                h.pendingProgress !== undefined
                  ? { id: h.id, token: h.token, progress: h.pendingProgress }
                  : { id: h.id, token: h.token },
              );
            }
            return entries;
          },
          apply: (entries: RenewEntry[], results: RenewResult[]) => {
            results.forEach((r, i) => {
              const h = map.get(r.id);
              const entry = entries[i] as RenewEntry;
              if (!h || h.token !== entry.token) return;
              if (r.status === 'ok') {
                if (entry.progress !== undefined && h.pendingProgress === entry.progress)
                  h.pendingProgress = undefined;
                return;
              }
              map.delete(h.id);
              h.lost(r.status);
            });
          },
        }),
      };
      this.#groups.set(held.leaseTtl, group);
    }
    group.held.set(held.id, held);
  }

  remove(held: Held): void {
    const group = this.#groups.get(held.leaseTtl);
    if (group?.held.get(held.id) === held) group.held.delete(held.id);
  }

  /** Renew the group of `held` now (to send progress at once). */
  kick(held: Held): void {
    this.#groups.get(held.leaseTtl)?.loop.kick();
  }

  /** Everything still held (for closing). */
  all(): Held[] {
    return [...this.#groups.values()].flatMap((g) => [...g.held.values()]);
  }

  close(): void {
    this.#closed = true;
    for (const g of this.#groups.values()) g.loop.close();
    this.#groups.clear();
  }
}
