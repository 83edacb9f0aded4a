/** Runs the store conformance suite, unchanged, on every selected backend. */
import { runConformanceSuite } from '../../src/store/conformance/index.js';
import { selectedFixtures, serverAvailable } from '../support/stores.js';

for (const fixture of selectedFixtures()) {
  if (serverAvailable(fixture)) runConformanceSuite(fixture);
}
