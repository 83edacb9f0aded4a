/**
 * Rota: a distributed job scheduler for Node.js.
 *
 * `Rota.connect(options)` opens a node; its modules hang off it (`rota.cluster`, `rota.hosts`, ...).
 * This entry point also exports the store contract, the store opener, the error catalog and each
 * module's public types, plus seed-shaped helpers such as `schedule(rota, namespace, options)`.
 */
export * from './cluster/index.js';
export type { RotaEventMap } from './core/events.js';
export { consoleLogger, type Logger, silentLogger } from './core/logger.js';
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
export {
  type DispatchOptions,
  type JobHandler,
  type JobParam,
  type JobPlan,
  type JobProducer,
  type NotifyOptions,
  type Payload,
  type PlacementFn,
  type PlanContext,
  POOL_DEFAULTS,
  type PoolEventMap,
  type PoolJob,
  type PoolJobInfo,
  PoolNode,
  type PoolOptions,
  type PoolSchedule,
  type Pools,
  type PoolWorker,
  type PoolWorkerInfo,
  type StopJobOptions,
  type StopOptions,
  type StopReason,
  type WorkerOptions as PoolWorkerOptions,
} from './pool/index.js';
export { DEFAULTS, Rota, type RotaOptions } from './rota.js';
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
export {
  type BatchContext,
  type BatchHandler,
  ClaimedTask,
  type ClaimOptions,
  type CompletionsOptions,
  type ConvergeReport,
  type EnqueueItem,
  type EnqueueOptions,
  type ListOptions,
  type QueueConfig,
  Resolution,
  type Task,
  type TaskContext,
  type TaskEvent,
  type TaskHandler,
  type TaskPage,
  type TaskRef,
  type TaskResult,
  Tasks,
  type TasksOptions,
  type WatchOptions as TaskWatchOptions,
  type Worker,
  type WorkerOptions,
} from './tasks/index.js';
export { type Clock, ManualClock, skewedClock, systemClock } from './time/clock.js';
