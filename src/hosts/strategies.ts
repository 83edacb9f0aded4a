/**
 * Host strategies (hosts.md §2.4) and their registry. Built-ins:
 *
 * - `rr` (default): sticky first-N. Incumbents (the stored `order`) keep their slots; free slots go
 *   to newcomers in join order. Nothing is kept in memory, so a new coordinator continues the set.
 * - `alpha`: the first `max` eligible hostnames in UTF-16 code-unit order.
 * - `spread`: as sticky as `rr`, but spreads the chosen hosts evenly over the values of a node
 *   label (default `zone`), so a role survives the loss of one zone or rack.
 * - `least-loaded`: the `max` candidates with the lowest numeric `data.load` (missing: last), ties
 *   in join order.
 */
import { InvalidArgumentError, StrategyViolationError } from '../errors.js';
import { checkFunction, checkName, invalid } from '../validate.js';
import { byCodeUnits } from './records.js';
import type { HostCandidate, HostStrategy, HostStrategyContext, HostStrategyFactory } from './types.js';

/** `rr`: keep the incumbents that are still eligible (in `last` order), fill free slots in join order. */
export const rrStrategy: HostStrategy = {
  kind: 'rr',
  schedule(candidates, { max, last }) {
    const eligible = new Set(candidates.map((c) => c.hostname));
    const keep = last.filter((h) => eligible.has(h)).slice(0, max);
    const kept = new Set(keep);
    const out = [...keep];
    for (const c of candidates) {
      if (out.length >= max) break;
      if (!kept.has(c.hostname)) out.push(c.hostname);
    }
    return out;
  },
};

/** `alpha`: the first `max` hostnames in code-unit order. */
export const alphaStrategy: HostStrategy = {
  kind: 'alpha',
  schedule(candidates, { max }) {
    return candidates
      .map((c) => c.hostname)
      .sort(byCodeUnits)
      .slice(0, max);
  },
};

/** Options of {@link spreadStrategy}. */
export interface SpreadStrategyOptions {
  /** The registered kind. Default `'spread'`. */
  kind?: string;
  /** The node label whose values the chosen hosts are spread over. Default `'zone'`. */
  label?: string;
}

/**
 * A sticky strategy that spreads the chosen hosts as evenly as possible over the values of a node
 * label (hosts without the label form one group). Group quotas are filled round-robin, groups that
 * already hold more incumbents first; inside a group incumbents stay and newcomers enter in join
 * order. Register more instances with `hosts.registerStrategy('spread-rack', () =>
 * spreadStrategy({ kind: 'spread-rack', label: 'rack' }))`.
 */
export function spreadStrategy(options: SpreadStrategyOptions = {}): HostStrategy {
  const label = options.label ?? 'zone';
  return {
    kind: options.kind ?? 'spread',
    schedule(candidates, { max, last }) {
      const k = Math.min(max, candidates.length);
      const groupOf = new Map<string, string>();
      const groups = new Map<string, HostCandidate[]>();
      for (const c of candidates) {
        const g = c.labels[label] ?? '';
        groupOf.set(c.hostname, g);
        let list = groups.get(g);
        if (!list) groups.set(g, (list = []));
        list.push(c);
      }
      const incumbents = new Map<string, string[]>();
      for (const h of last) {
        const g = groupOf.get(h);
        if (g === undefined) continue;
        let list = incumbents.get(g);
        if (!list) incumbents.set(g, (list = []));
        list.push(h);
      }
      const order = [...groups.keys()]
        .map((g, firstSeen) => ({ g, firstSeen, held: incumbents.get(g)?.length ?? 0 }))
        .sort((a, b) => b.held - a.held || a.firstSeen - b.firstSeen)
        .map((x) => x.g);
      const quota = new Map<string, number>(order.map((g) => [g, 0]));
      for (let left = k; left > 0; ) {
        let progressed = false;
        for (const g of order) {
          if (left === 0) break;
          const q = quota.get(g) as number;
          if (q < (groups.get(g) as HostCandidate[]).length) {
            quota.set(g, q + 1);
            left--;
            progressed = true;
          }
        }
        if (!progressed) break;
      }
      const chosen = new Set<string>();
      for (const g of order) {
        let q = quota.get(g) as number;
        for (const h of incumbents.get(g) ?? []) {
          if (q === 0) break;
          chosen.add(h);
          q--;
        }
        for (const c of groups.get(g) as HostCandidate[]) {
          if (q === 0) break;
          if (chosen.has(c.hostname)) continue;
          chosen.add(c.hostname);
          q--;
        }
      }
      const kept = last.filter((h) => chosen.has(h));
      const keptSet = new Set(kept);
      return [...kept, ...candidates.map((c) => c.hostname).filter((h) => chosen.has(h) && !keptSet.has(h))];
    },
  };
}

/** `least-loaded`: lowest numeric `data.load` first (non-numbers last), ties in join order. */
export const leastLoadedStrategy: HostStrategy = {
  kind: 'least-loaded',
  schedule(candidates, { max }) {
    const load = (c: HostCandidate): number => {
      const d = c.data as { load?: unknown } | null;
      return typeof d === 'object' && d !== null && typeof d.load === 'number' && Number.isFinite(d.load)
        ? d.load
        : Number.POSITIVE_INFINITY;
    };
    return candidates
      .map((c, i) => ({ h: c.hostname, load: load(c), i }))
      .sort((a, b) => (a.load === b.load ? a.i - b.i : a.load < b.load ? -1 : 1))
      .slice(0, max)
      .map((x) => x.h);
  },
};

/** Built-in kinds, registered on every node. */
export const BUILT_IN_STRATEGIES: Record<string, HostStrategyFactory> = {
  rr: () => rrStrategy,
  alpha: () => alphaStrategy,
  spread: () => spreadStrategy(),
  'least-loaded': () => leastLoadedStrategy,
};

/** The strategies known to one node. */
export class StrategyRegistry {
  readonly #factories = new Map<string, HostStrategyFactory>();
  readonly #instances = new Map<string, HostStrategy>();

  constructor() {
    for (const [kind, factory] of Object.entries(BUILT_IN_STRATEGIES)) this.#factories.set(kind, factory);
  }

  /** Register `kind`; a kind that exists already is `ROTA_INVALID_ARGUMENT`. */
  register(kind: string, factory: HostStrategyFactory): void {
    checkName('kind', kind);
    checkFunction('factory', factory);
    if (this.#factories.has(kind))
      invalid('kind', `a host strategy is already registered as ${JSON.stringify(kind)}`);
    this.#factories.set(kind, factory);
  }

  has(kind: string): boolean {
    return this.#factories.has(kind);
  }

  kinds(): string[] {
    return [...this.#factories.keys()].sort(byCodeUnits);
  }

  /** The strategy of `kind` (built on first use); undefined when the kind is unknown here. */
  get(kind: string): HostStrategy | undefined {
    const cached = this.#instances.get(kind);
    if (cached) return cached;
    const factory = this.#factories.get(kind);
    if (!factory) return undefined;
    const strategy = factory();
    if (typeof strategy !== 'object' || strategy === null || typeof strategy.schedule !== 'function') {
      throw new InvalidArgumentError(`the factory of host strategy ${kind} did not return a strategy`, {
        detail: { field: 'factory', kind },
      });
    }
    this.#instances.set(kind, strategy);
    return strategy;
  }
}

/**
 * Check a strategy's result: an array of distinct eligible hostnames, at most `max` of them.
 * Returns the result as a fresh array or throws `ROTA_STRATEGY_VIOLATION`.
 */
export function validateResult(
  kind: string,
  result: unknown,
  eligible: readonly HostCandidate[],
  context: Pick<HostStrategyContext, 'max' | 'namespace'>,
): string[] {
  const violation = (reason: string): never => {
    throw new StrategyViolationError(`host strategy ${kind} for ${context.namespace}: ${reason}`, {
      detail: { strategy: kind, namespace: context.namespace, reason },
    });
  };
  if (!Array.isArray(result)) return violation('the result is not an array');
  const names = new Set(eligible.map((c) => c.hostname));
  const seen = new Set<string>();
  for (const h of result) {
    if (typeof h !== 'string') violation(`the result holds a non-string (${typeof h})`);
    if (!names.has(h)) violation(`${JSON.stringify(h)} is not an eligible candidate`);
    if (seen.has(h)) violation(`${JSON.stringify(h)} appears twice`);
    seen.add(h);
  }
  if (result.length > context.max) violation(`${result.length} hosts is more than max ${context.max}`);
  return [...(result as string[])];
}
