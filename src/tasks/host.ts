/** What the module's parts (workers, claims, resolutions, feeds) share. */
import type { RotaContext } from '../core/context.js';
import type { TaskEvents } from './events.js';
import type { ResolvedTasksOptions } from './options.js';
import type { QueueConfigs } from './queue-config.js';

export interface TasksHost {
  readonly ctx: RotaContext;
  readonly events: TaskEvents;
  readonly configs: QueueConfigs;
  readonly options: ResolvedTasksOptions;
  /** Record an undecodable task; the next converger pass deletes it (`task:malformed`). */
  reportMalformed(id: string, queue: string, reason: string): void;
  /** Raise the module's lower bound of the change feed's head. */
  observeChangeSeq(changeSeq: number): void;
  /** The highest change-feed position this node has seen (a lower bound of the feed's head). */
  readonly headHint: number;
}
