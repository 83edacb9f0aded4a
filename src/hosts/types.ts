/**
 * Public types of the hosts module (hosts.md): decisions, candidacy options and the strategy
 * interface.
 */
import type { Logger } from '../core/logger.js';
import type { RotaError } from '../errors.js';

/** A published choice of hosts for one namespace, as every observer sees it. */
export interface HostDecision {
  readonly namespace: string;
  /**
   * The chosen hostnames, sorted, restricted to candidacies that are present right now (a host
   * that is gone is never reported, even before a coordinator rewrites the decision).
   */
  readonly hosts: string[];
  /** The same hosts in rank order (the strategy's output order), restricted the same way. */
  readonly order: string[];
  /** modRevision of the stored decision (0 when there is none). */
  readonly revision: number;
  /** nodeId of the coordinator that wrote the decision (null when there is none). */
  readonly leader: string | null;
  /** Store time of the decision, epoch ms (null when there is none). */
  readonly decidedAt: number | null;
}

/** Options of a candidacy: `add`, `schedule`. Every field is optional. */
export interface HostCandidacyOptions {
  /** The identity inside the set. Default: the node id. */
  hostname?: string;
  /** A registered strategy kind. Default `'rr'`. */
  strategy?: string;
  /** At most this many hosts are chosen: a positive integer or `Infinity`. Default 1. */
  max?: number;
  /**
   * TTL of the candidacy lease in ms (an integer ≥ 1 000, rounded up to whole seconds).
   * Default: the node's `sessionTtl` (10 000 unless configured), whose lease is then reused.
   */
  sessionTtl?: number;
  /**
   * On close the lease is not revoked but left to run out, and a new candidacy for the same
   * namespace and hostname from this process within the TTL resumes it. Default false.
   */
  reuseLease?: boolean;
  /** The candidacy has no lease: it survives the process and only `withdraw` removes it. Default false. */
  persist?: boolean;
  /** Only these hostnames are eligible (empty or absent: everyone). At most 1 000. Default `[]`. */
  hostsFilter?: string[];
  /** JSON passed to strategies (≤ 4 KiB). The built-ins ignore it, except `least-loaded`. Default null. */
  data?: unknown;
}

/** Options of `hosts.schedule()`. */
export interface HostScheduleOptions extends HostCandidacyOptions {
  /** Aborting it closes the schedule; its iterator then throws `ROTA_ABORTED`. */
  signal?: AbortSignal;
}

/** Options of `hosts.add()`. */
export interface HostAddOptions extends HostCandidacyOptions {
  /** Report whether the call would change anything, without writing. Default false. */
  dryRun?: boolean;
}

/** Options of `hosts.withdraw()`. */
export interface HostWithdrawOptions {
  /** Default: the node id. */
  hostname?: string;
  /** Report whether the call would change anything, without writing. Default false. */
  dryRun?: boolean;
}

/** Options of `hosts.release()`. */
export interface HostReleaseOptions {
  /** Default: the node id. */
  hostname?: string;
  /** `false` (default): remove the candidacy now. `true`: leave it until its lease expires. */
  linger?: boolean;
}

/** Options of `hosts.start()`. */
export interface HostsStartOptions {
  /** Stop taking part (unless candidacies still need it) when this aborts. */
  signal?: AbortSignal;
  /** Lease TTL of this node's coordinator candidacy in ms (≥ 1 000). Default 1 000. */
  electionTtl?: number;
}

/** The result of `add` and `withdraw`. */
export interface HostChange {
  /** True when the call changed (or, with `dryRun`, would change) the stored candidacy. */
  readonly changed: boolean;
}

/** The options shared by a namespace, taken from its oldest candidacy. */
export interface HostNamespaceOptions {
  readonly strategy: string;
  /** A positive integer or `Infinity`. */
  readonly max: number;
  readonly hostsFilter: string[];
}

/** A candidate as strategies see it. */
export interface HostCandidate {
  readonly hostname: string;
  readonly nodeId: string;
  /** The candidacy's `data` (JSON, null when none). */
  readonly data: unknown;
  /** The labels of the node that offered it (`Rota.connect({ labels })`). */
  readonly labels: Readonly<Record<string, string>>;
  /** createRevision of the candidacy key: lower joined earlier. */
  readonly joinRevision: number;
  /** The options this candidate declared (the namespace uses the oldest candidate's). */
  readonly options: HostNamespaceOptions;
}

/** What a strategy is told besides the candidates. */
export interface HostStrategyContext {
  readonly namespace: string;
  /** A positive integer or `Infinity`. */
  readonly max: number;
  /** The stored decision's rank order (`[]` when there is none). */
  readonly last: readonly string[];
  readonly hostsFilter: readonly string[];
  /** Aborts when the 5 s budget runs out or the coordinator loses its leadership. */
  readonly signal: AbortSignal;
  readonly logger: Logger;
}

/**
 * A host strategy: from the eligible candidates (in join order), return the chosen hostnames in
 * rank order, at most `max`, without duplicates. Must be deterministic given its input: a new
 * coordinator re-runs it.
 */
export interface HostStrategy {
  readonly kind: string;
  schedule(
    candidates: readonly HostCandidate[],
    context: HostStrategyContext,
  ): readonly string[] | Promise<readonly string[]>;
}

/** Builds the strategy of a kind; called once, on first use. */
export type HostStrategyFactory = () => HostStrategy;

declare module '../core/events.js' {
  interface RotaEventMap {
    /** The coordinator published a new decision (or deleted an empty one). */
    'hosts:decided': { namespace: string; hosts: string[]; order: string[]; revision: number };
    /** An observed, filtered decision changed on this node. */
    'hosts:changed': { namespace: string; hosts: string[] };
    /** Candidates of a namespace declare different options; the oldest candidate's apply. */
    'hosts:options-conflict': {
      namespace: string;
      applied: HostNamespaceOptions & { hostname: string };
      conflicting: { hostname: string; options: HostNamespaceOptions }[];
    };
    /** Something went wrong and was handled (strategy failure, malformed value, store trouble). */
    'hosts:error': { namespace: string | null; error: RotaError };
    /** This node became the coordinator and finished its first decision pass. */
    'hosts:coordinating': { nodeId: string; token: number };
  }
}
