/**
 * Rota: a distributed job scheduler for Node.js.
 *
 * This entry point exports the store contract, the store opener and the error catalog. The
 * modules (cluster, hosts, schedules, tasks, pool) hang off `Rota.connect` as they land.
 */
export * from './errors.js';
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
