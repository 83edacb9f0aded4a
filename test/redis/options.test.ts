/** Redis store settings: URL parts, query parameters and options are checked before connecting. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isRotaError } from '../../src/errors.js';
import { openStore } from '../../src/store/open.js';
import { parseRedisConfig } from '../../src/store/redis/index.js';

const parse = (url: string, options?: Record<string, unknown>) => parseRedisConfig(new URL(url), options);
const invalid = (fn: () => unknown) =>
  assert.throws(fn, (err: unknown) => isRotaError(err, 'ROTA_INVALID_ARGUMENT'));

describe('redis store options', () => {
  it('has documented defaults and reads the URL parts', () => {
    const c = parse('redis://127.0.0.1');
    assert.equal(c.prefix, 'rota');
    assert.equal(c.base, '{rota}');
    assert.equal(c.port, 6379);
    assert.equal(c.db, 0);
    assert.equal(c.historyRevisions, 100_000);
    assert.equal(c.storeTimeout, 10_000);
    assert.equal(c.checkEviction, true);
    assert.equal(c.scripts, 'auto');
    assert.equal(c.tls, undefined);
    const d = parse(
      'rediss://us%40r:p%3Ass@example.test:6380/3?prefix=app.1&historyRevisions=500&checkEviction=false',
    );
    assert.equal(d.username, 'us@r');
    assert.equal(d.password, 'p:ss');
    assert.equal(d.host, 'example.test');
    assert.equal(d.port, 6380);
    assert.equal(d.db, 3);
    assert.equal(d.prefix, 'app.1');
    assert.equal(d.base, '{app.1}');
    assert.equal(d.historyRevisions, 500);
    assert.equal(d.checkEviction, false);
    assert.deepEqual(d.tls, {});
    assert.equal(parse('redis://h?scripts=eval').scripts, 'eval');
    assert.equal(parse('redis://h', { scripts: 'functions' }).scripts, 'functions');
  });

  it('lets the options object set the same settings (it wins over the URL)', () => {
    const c = parse('redis://h?prefix=a', { prefix: 'b', storeTimeout: 500, tls: undefined });
    assert.equal(c.prefix, 'b');
    assert.equal(c.storeTimeout, 500);
    assert.deepEqual(parse('rediss://h', { tls: { servername: 'x' } }).tls, { servername: 'x' });
  });

  it('refuses unknown parameters, bad values and wrong types with ROTA_INVALID_ARGUMENT', () => {
    invalid(() => parse('redis://h?prefx=a'));
    invalid(() => parse('redis://h?prefix='));
    invalid(() => parse('redis://h?prefix=a%7Bb'));
    invalid(() => parse('redis://h?prefix=a:b'));
    invalid(() => parse('redis://h?historyRevisions=0'));
    invalid(() => parse('redis://h?historyRevisions=ten'));
    invalid(() => parse('redis://h?checkEviction=maybe'));
    invalid(() => parse('redis://h?scripts=lua'));
    invalid(() => parse('redis://h', { scripts: true }));
    invalid(() => parse('redis://h/db1'));
    invalid(() => parse('redis://h/0/1'));
    invalid(() => parse('redis://h#x'));
    invalid(() => parse('redis://h', { historyRevisions: '10' }));
    invalid(() => parse('redis://h', { storeTimeout: 1.5 }));
    invalid(() => parse('redis://h', { checkEviction: 'no' }));
    invalid(() => parse('redis://h', { prefix: 7 }));
    invalid(() => parse('redis://h', { poolSize: 3 }));
    invalid(() => parse('redis://h', { tls: {} }));
    invalid(() => parse('redis://h', { tls: 'yes' }));
    invalid(() => parse('redis://h', { clock: {} }));
  });

  it('openStore refuses bad settings before connecting', async () => {
    await assert.rejects(openStore('redis://127.0.0.1:1/?bogus=1'), { code: 'ROTA_INVALID_ARGUMENT' });
    await assert.rejects(openStore('redis://127.0.0.1:1/', { prefix: '' }), {
      code: 'ROTA_INVALID_ARGUMENT',
    });
  });

  it('an unreachable server is ROTA_STORE_UNAVAILABLE within storeTimeout', async () => {
    const err = await openStore('redis://127.0.0.1:1/', { storeTimeout: 300 }).then(
      () => assert.fail('opened a store on port 1'),
      (e: unknown) => e,
    );
    assert.ok(isRotaError(err, 'ROTA_STORE_UNAVAILABLE'), String(err));
    assert.equal(err.detail.ambiguous, false);
  });
});
