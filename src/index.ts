/**
 * Rota: a distributed job scheduler for Node.js.
 *
 * `Rota.connect(options)` opens a node; its modules hang off it (`rota.cluster`, ...). This entry
 * point also exports the store contract, the store opener and the error catalog.
 */
export * from './cluster/index.js';
export type { RotaEventMap } from './core/events.js';
export { consoleLogger, type Logger, silentLogger } from './core/logger.js';
export * from './errors.js';
export * from './pool/index.js';
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
export { type Clock, ManualClock, skewedClock, systemClock } from './time/clock.js';
