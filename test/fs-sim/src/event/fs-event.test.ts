import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { FsEvent } from './fs-event.js';
import { fsUrlEncode } from './url-encode.js';

describe('fsUrlEncode', () => {
  it('encodes spaces, colons and FreeSWITCH unsafe characters as upper-case %XX', () => {
    assert.equal(fsUrlEncode('Tue, 24 Nov 2026 16:43:08 GMT'), 'Tue,%2024%20Nov%202026%2016%3A43%3A08%20GMT');
    assert.equal(fsUrlEncode('a+b&c=d?e@f;g<h>i#j'), 'a%2Bb%26c%3Dd%3Fe%40f%3Bg%3Ch%3Ei%23j');
    assert.equal(fsUrlEncode('::1'), '%3A%3A1');
  });

  it('encodes control bytes and every byte of non-ASCII UTF-8', () => {
    assert.equal(fsUrlEncode('line1\nline2\r'), 'line1%0Aline2%0D');
    assert.equal(fsUrlEncode('€'), '%E2%82%AC');
  });

  it('leaves a % that already starts upper-case hex alone, and encodes any other %', () => {
    assert.equal(fsUrlEncode('100%41'), '100%41');
    assert.equal(fsUrlEncode('100%zz'), '100%25zz');
    assert.equal(fsUrlEncode('50%'), '50%25');
    assert.equal(fsUrlEncode('%4a'), '%254a');
  });

  it('round-trips through decodeURIComponent for ordinary text', () => {
    const text = 'Caller "Bob" <sip:bob@example.com>; tag=1 ünïcode';
    assert.equal(decodeURIComponent(fsUrlEncode(text)), text);
  });
});

describe('FsEvent serialisation', () => {
  const event = (): FsEvent =>
    new FsEvent('HEARTBEAT').addHeader('Event-Name', 'HEARTBEAT').addHeader('Up-Time', '0 years, 1 day');

  it('writes plain headers url-encoded, one a line, ending with a blank line', () => {
    assert.equal(event().toPlain(), 'Event-Name: HEARTBEAT\nUp-Time: 0%20years,%201%20day\n\n');
  });

  it('writes an empty value as _undef_ in plain, and as "" in JSON', () => {
    const e = new FsEvent('X').addHeader('Job-Owner-UUID', '');
    assert.equal(e.toPlain(), 'Job-Owner-UUID: _undef_\n\n');
    assert.equal(e.toJson(), '{"Job-Owner-UUID":""}');
  });

  it('appends a body with its length in bytes', () => {
    const e = event();
    e.body = 'héllo\n';
    assert.equal(
      e.toPlain(),
      'Event-Name: HEARTBEAT\nUp-Time: 0%20years,%201%20day\nContent-Length: 7\n\nhéllo\n',
    );
    assert.deepEqual(JSON.parse(e.toJson()), {
      'Event-Name': 'HEARTBEAT',
      'Up-Time': '0 years, 1 day',
      'Content-Length': '7',
      _body: 'héllo\n',
    });
  });

  it('writes JSON with string values only, unformatted, in header order', () => {
    const e = new FsEvent('HEARTBEAT').addHeader('Event-Name', 'HEARTBEAT').addHeader('Session-Count', 3);
    assert.equal(e.toJson(), '{"Event-Name":"HEARTBEAT","Session-Count":"3"}');
  });

  it('writes XML with url-encoded header text and an escaped body', () => {
    const e = event();
    e.body = 'a < b & c';
    assert.equal(
      e.toXml(),
      '<event>\n  <headers>\n    <Event-Name>HEARTBEAT</Event-Name>\n    <Up-Time>0%20years,%201%20day</Up-Time>\n' +
        '  </headers>\n  <Content-Length>9</Content-Length>\n  <body>a &lt; b &amp; c</body>\n</event>\n',
    );
  });

  it('finds headers case-insensitively', () => {
    assert.equal(event().getHeader('up-time'), '0 years, 1 day');
    assert.equal(event().getHeader('nope'), undefined);
  });
});
