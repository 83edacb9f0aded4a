/**
 * Rota: a distributed job scheduler for Node.js.
 *
 * This entry point exports the store contract, the store opener, the error catalog and the hosts
 * module's public types and seed-shaped `schedule(rota, namespace, options)`. The modules
 * (cluster, hosts, schedules, tasks, pool) hang off `Rota.connect` as they land.
 */
export * from './errors.js';
export {
  alphaStrategy,
  HOSTS_DEFAULTS,
  type HostAddOptions,
  type HostCandidacyOptions,
  type HostCandidate,
  type HostChange,
  type HostDecision,
  type HostNamespaceOptions,
  type HostReleaseOptions,
  HostSchedule,
  type HostScheduleOptions,
  type HostStrategy,
  type HostStrategyContext,
  type HostStrategyFactory,
  type Hosts,
  type HostsStartOptions,
  type HostWithdrawOptions,
  leastLoadedStrategy,
  rrStrategy,
  type SpreadStrategyOptions,
  schedule,
  spreadStrategy,
} from './hosts/index.js';
export { Rota, type RotaOptions } from './rota.js';
export { MemoryEngine, openMemoryStore } from './store/memory/index.js';
export {
  isStore,
  type OpenStoreOptions,
  openStore,
  registerStoreScheme,
  storeSchemes,
} from './store/open.js';
export * from './store/port.js';
export { withValidation } from './store/validating-store.js';
export { type Clock, ManualClock, skewedClock, systemClock } from './time/clock.js';
