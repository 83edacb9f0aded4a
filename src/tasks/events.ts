/**
 * Events of the tasks module (tasks.md §2.8), emitted on `rota.tasks.events` and `rota.events`.
 * Per-task events are built only when someone listens, so the worker's fast path pays nothing
 * for them otherwise.
 */
import type { EventBus } from '../core/events.js';
import type { ConvergeReport, TaskError } from './types.js';

interface TaskRefEvent {
  id: string;
  queue: string;
}

declare module '../core/events.js' {
  interface RotaEventMap {
    'task:enqueued': TaskRefEvent;
    'task:deduplicated': TaskRefEvent & { requestedId: string; replaced: boolean };
    'task:claimed': TaskRefEvent & { owner: string; token: number; attempt: number };
    'task:started': TaskRefEvent & { owner: string; token: number; attempt: number };
    'task:progress': TaskRefEvent & { progress: unknown };
    'task:retrying': TaskRefEvent & { attempt: number; error: TaskError; runAt?: number; delay?: number };
    /** Running attempts whose lease expired, returned by a converger pass (count). */
    'task:stalled': { count: number };
    'task:completed': TaskRefEvent & { attempt: number; result: unknown };
    'task:failed': TaskRefEvent & { attempt: number; error: TaskError };
    'task:cancelled': TaskRefEvent & { reason: string };
    'task:dead-lettered': TaskRefEvent & { deadLetter: string; error: TaskError };
    'task:timeout': TaskRefEvent & { code: 'ROTA_TASK_TIMEOUT' | 'ROTA_HEARTBEAT_TIMEOUT' };
    'task:zombie': TaskRefEvent & { token: number };
    'task:settle-rejected': TaskRefEvent & { op: string; status: string; token: number };
    'task:resolving': TaskRefEvent & { owner: string; token: number };
    'task:resolved': TaskRefEvent;
    /** Completed tasks deleted by a converger pass (count). */
    'task:pruned': { count: number };
    'task:malformed': TaskRefEvent & { reason: string };
    'converge:completed': ConvergeReport;
    'worker:paused': { queue: string; workerId: string };
    'worker:resumed': { queue: string; workerId: string };
    'worker:closed': { queue: string; workerId: string };
  }
}

/** Emits on the module bus (which forwards to `rota.events`) only when someone listens. */
export class TaskEvents {
  constructor(
    readonly bus: EventBus,
    private readonly root: EventBus,
  ) {}

  /** True when `name` has a listener on the module bus or on `rota.events`. */
  has(name: Parameters<EventBus['listenerCount']>[0]): boolean {
    return this.bus.listenerCount(name) > 0 || this.root.listenerCount(name) > 0;
  }

  emit: EventBus['emit'] = (name, payload) => {
    this.bus.emit(name, payload);
  };
}
