import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { CommandReader, commandHeader } from './command-reader.js';

const push = (reader: CommandReader, text: string): ReturnType<CommandReader['push']> =>
  reader.push(Buffer.from(text));

describe('CommandReader', () => {
  it('cuts commands at a blank line and keeps the first line as the command', () => {
    const reader = new CommandReader();
    assert.deepEqual(push(reader, 'auth ClueCon\n\napi status\n\n'), [
      { line: 'auth ClueCon', headers: [] },
      { line: 'api status', headers: [] },
    ]);
  });

  it('waits for the rest of a command split across chunks', () => {
    const reader = new CommandReader();
    assert.deepEqual(push(reader, 'api sta'), []);
    assert.deepEqual(push(reader, 'tus\n'), []);
    assert.deepEqual(push(reader, '\n'), [{ line: 'api status', headers: [] }]);
  });

  it('accepts CRLF line ends and skips blank lines before a command', () => {
    const reader = new CommandReader();
    assert.deepEqual(push(reader, '\r\n\napi status\r\n\r\n'), [{ line: 'api status', headers: [] }]);
  });

  it('reads header lines after the command, skipping lines without a colon', () => {
    const reader = new CommandReader();
    assert.deepEqual(push(reader, 'bgapi status\nJob-UUID:   abc-123\nnonsense\n\n'), [
      { line: 'bgapi status', headers: [['Job-UUID', 'abc-123']] },
    ]);
  });

  it('reads header lines and a Content-Length body', () => {
    const reader = new CommandReader();
    const out = push(reader, 'sendevent CUSTOM\nJob-UUID: abc\ncontent-length: 5\n\nhel');
    assert.deepEqual(out, []);
    const done = push(reader, 'loapi status\n\n');
    assert.deepEqual(done, [
      {
        line: 'sendevent CUSTOM',
        headers: [
          ['Job-UUID', 'abc'],
          ['content-length', '5'],
        ],
        body: 'hello',
      },
      { line: 'api status', headers: [] },
    ]);
  });

  it('finds command headers case-insensitively', () => {
    assert.equal(commandHeader({ line: 'bgapi x', headers: [['Job-UUID', 'abc']] }, 'job-uuid'), 'abc');
    assert.equal(commandHeader({ line: 'bgapi x', headers: [] }, 'job-uuid'), undefined);
  });

  it('refuses a negative or huge Content-Length', () => {
    assert.equal(push(new CommandReader(), 'x\nContent-Length: -1\n\n'), 'overflow');
    assert.equal(push(new CommandReader(), 'x\nContent-Length: 99999999\n\n'), 'overflow');
  });
});
