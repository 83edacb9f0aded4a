/** Runs the store conformance suite, unchanged, on every selected backend. */
import { runConformanceSuite } from '../../src/store/conformance/index.js';
import { redisEval, selectedFixtures, serverAvailable } from '../support/stores.js';

for (const fixture of selectedFixtures()) {
  if (!serverAvailable(fixture)) continue;
  runConformanceSuite(fixture);
  // Redis runs its scripts as Redis Functions where it can; the EVALSHA path (Redis 6.2) too.
  if (fixture.name === 'redis') runConformanceSuite(redisEval);
}
