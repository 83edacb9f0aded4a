import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { errorsDoc } from '../../scripts/gen-errors-doc.js';
import {
  ERROR_CODES,
  InvalidArgumentError,
  isRotaError,
  LockBusyError,
  RetryAtError,
  RotaError,
  wrapError,
} from '../../src/errors.js';

describe('error catalog', () => {
  it('every class carries its code, detail and cause, and instanceof works', () => {
    const cause = new Error('driver');
    const err = new InvalidArgumentError('bad', { detail: { field: 'x' }, cause });
    assert.equal(err.code, 'ROTA_INVALID_ARGUMENT');
    assert.equal(err.detail.field, 'x');
    assert.equal(err.cause, cause);
    assert.ok(err instanceof InvalidArgumentError);
    assert.ok(err instanceof RotaError);
    assert.ok(err instanceof Error);
    assert.ok(!(err instanceof LockBusyError));
    assert.equal(err.name, 'InvalidArgumentError');
    assert.deepEqual(err.toJSON(), { code: 'ROTA_INVALID_ARGUMENT', message: 'bad', detail: { field: 'x' } });
  });

  it('instanceof works for an error made by another copy of the package (branding)', () => {
    // Simulate a second copy: a plain Error carrying the same Symbol.for brands.
    const foreign = new Error('from another copy');
    Object.defineProperty(foreign, Symbol.for('rota.error'), { value: true });
    Object.defineProperty(foreign, Symbol.for('rota.error.ROTA_LOCK_BUSY'), { value: true });
    assert.ok(foreign instanceof RotaError);
    assert.ok(foreign instanceof LockBusyError);
    assert.ok(!(foreign instanceof InvalidArgumentError));
  });

  it('RetryAtError keeps its instant; wrapError keeps RotaErrors and wraps others', () => {
    const at = Date.UTC(2030, 0, 1);
    const retry = new RetryAtError(new Date(at));
    assert.equal(retry.at, at);
    assert.equal(retry.code, 'ROTA_RETRY_AT');
    assert.ok(retry instanceof RetryAtError);
    const wrapped = wrapError(new TypeError('x'), 'ROTA_STORE_ERROR', 'redis');
    assert.equal(wrapped.code, 'ROTA_STORE_ERROR');
    assert.equal(wrapped.message, 'redis: x');
    assert.ok(isRotaError(wrapped, 'ROTA_STORE_ERROR'));
    assert.equal(wrapError(retry, 'ROTA_STORE_ERROR'), retry);
  });

  it('every code has a one-line meaning and docs/errors.md is current', () => {
    for (const [code, meaning] of Object.entries(ERROR_CODES)) {
      assert.match(code, /^ROTA_[A-Z_]+$/);
      assert.ok(meaning.length > 10, code);
    }
    const doc = readFileSync(new URL('../../docs/errors.md', import.meta.url), 'utf8');
    assert.equal(doc, errorsDoc(), 'docs/errors.md is stale: run npx tsx scripts/gen-errors-doc.ts');
  });
});
