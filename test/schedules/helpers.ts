/** Shared helpers of the schedules scenarios. */
import type { EventName, RotaEventMap } from '../../src/core/events.js';
import type { TestCluster, TestNode } from '../../src/testing/index.js';
import { sleep } from '../../src/time/clock.js';

/** Sleep on a node's clock (the shared ManualClock in manual clusters), honouring `signal`. */
export function work(node: TestNode, ms: number, signal?: AbortSignal): Promise<void> {
  return sleep(node.rota.context.clock, ms, signal);
}

/** Advance a manual cluster in small steps so chains of store calls settle between timers. */
export async function advance(cluster: TestCluster, ms: number, step = 25): Promise<void> {
  for (let done = 0; done < ms; done += step) await cluster.advance(Math.min(step, ms - done));
}

/** Record every `name` event of the given nodes. */
export function record<K extends EventName>(
  nodes: TestNode[],
  name: K,
): (RotaEventMap[K] & { node: string })[] {
  const out: (RotaEventMap[K] & { node: string })[] = [];
  for (const n of nodes)
    n.rota.events.on(name, (e) => out.push({ ...(e as object), node: n.nodeId } as never));
  return out;
}

/** Start the runner on every node with the same options. */
export async function startAll(
  nodes: TestNode[],
  options: Parameters<TestNode['rota']['schedules']['start']>[0] = {},
) {
  await Promise.all(nodes.map((n) => n.rota.schedules.start(options)));
}

export const HOUR = 3_600_000;
