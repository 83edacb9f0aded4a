/** Writes docs/errors.md from the error catalog (run: npx tsx scripts/gen-errors-doc.ts). */
import { writeFileSync } from 'node:fs';
import { ERROR_CODES } from '../src/errors.js';

export function errorsDoc(): string {
  const rows = Object.entries(ERROR_CODES).map(([code, meaning]) => `| \`${code}\` | ${meaning} |`);
  return `# Error codes

Every error Rota raises is a \`RotaError\` with a stable \`code\`, a \`message\`, a \`detail\` object
(for example \`detail.field\` naming a bad argument) and, when it wraps another error, a \`cause\`.
Each code has its own class (\`InvalidArgumentError\`, \`LockBusyError\`, ...); \`instanceof\` works
across duplicate copies of the package because classes are branded with
\`Symbol.for('rota.error.<CODE>')\`. \`err.toJSON()\` gives \`{ code, message, detail }\`.

| code | meaning |
|---|---|
${rows.join('\n')}

This file is generated from \`src/errors.ts\` by \`npx tsx scripts/gen-errors-doc.ts\`; a unit test
fails when they drift apart.
`;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  writeFileSync(new URL('../docs/errors.md', import.meta.url), errorsDoc());
}
