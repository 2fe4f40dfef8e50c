import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { describe, it } from 'node:test';
import { plainEnvironment } from './drachtio-link.js';

const require = createRequire(import.meta.url);
/** srf's SIP message class: its parser reads `process.env` for every header. */
const SipMessage = require('drachtio-srf/lib/sip-parser/message.js') as new (raw: string) => {
  headers: Record<string, string>;
};

const INVITE = [
  'INVITE sip:service@127.0.0.1:5060 SIP/2.0',
  'Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-1',
  'From: <sip:a@127.0.0.1>;tag=1',
  'To: <sip:service@127.0.0.1>',
  'Call-ID: 1@127.0.0.1',
  'CSeq: 1 INVITE',
  'Contact: <sip:a@127.0.0.1:5061>',
  'Content-Length: 0',
  '',
  '',
].join('\r\n');

describe('plainEnvironment', () => {
  it('keeps every variable, for this process, for srf and for child processes', (t) => {
    const real = process.env;
    t.after(() => {
      process.env = real;
    });
    real.FSLB_TEST_PLAIN_ENV = 'kept';
    // srf's parser keeps a header name listed here as sent, rather than lower-casing it.
    real.DRACHTIO_PRESERVE_HEADER_NAMES = 'Call-ID';
    t.after(() => {
      delete real.FSLB_TEST_PLAIN_ENV;
      delete real.DRACHTIO_PRESERVE_HEADER_NAMES;
    });
    const before = { ...real };

    plainEnvironment();

    assert.notEqual(process.env, real, 'a new object');
    assert.equal(Object.getPrototypeOf(process.env), Object.prototype, 'a plain object');
    assert.deepEqual({ ...process.env }, before, 'the same variables');
    assert.equal(process.env.FSLB_TEST_PLAIN_ENV, 'kept');
    assert.equal(process.env.FSLB_NOT_SET_ANYWHERE, undefined);
    assert.ok('Call-ID' in new SipMessage(INVITE).headers, 'srf still reads its setting');
    const child = execFileSync(
      process.execPath,
      ['-e', 'process.stdout.write(process.env.FSLB_TEST_PLAIN_ENV ?? "")'],
      {
        encoding: 'utf8',
      },
    );
    assert.equal(child, 'kept', 'a child process gets the variables');

    const plain = process.env;
    plainEnvironment();
    assert.equal(process.env, plain, 'a second call changes nothing');
  });
});
