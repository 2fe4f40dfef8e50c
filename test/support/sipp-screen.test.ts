import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { readMessageTable } from '../../bench/support/sipp-run.js';

const dir = mkdtempSync(join(tmpdir(), 'fslb-sipp-screen-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** A screen file as SIPp writes it with -trace_screen: the message table, then the statistics. */
function screen(name: string, rows: string[]): string {
  const file = join(dir, name);
  const head = '                                 Messages  Retrans   Timeout   Unexpected-Msg';
  writeFileSync(
    file,
    [head, ...rows, '', '----- Statistics Screen ----', '  200 <---------- 99 0 0 0'].join('\n'),
  );
  return file;
}

const expected = [
  { msg: 'INVITE ->', count: 10, retrans: 1, timeout: 0, unexpected: 0 },
  { msg: '100 <-', count: 0, retrans: 0, timeout: 0, unexpected: 0 },
  { msg: '503 <-', count: 3, retrans: 0, timeout: 0, unexpected: 2 },
  { msg: '200 <-', count: 7, retrans: 0, timeout: 0, unexpected: 0 },
  { msg: 'ACK ->', count: 10, retrans: 0, timeout: 0, unexpected: 0 },
];

/** SIPp 3.6's rows; 3.7 writes the same ones led by their index (`0 :`). */
const rows36 = [
  '      INVITE ---------->         10        1         0                         ',
  '         100 <----------         0         0         0         0               ',
  '         503 <----------         3         0         0         2               ',
  '         200 <----------  E-RTD1 7         0         0         0               ',
  '         ACK ---------->         10        0                                   ',
  '       Pause [      0ms]         10                            0        ',
];

describe('readMessageTable (bench/support/sipp-run.ts)', () => {
  it("reads SIPp 3.6's rows, the one marked as the end of a timed span included", () => {
    assert.deepEqual(readMessageTable(screen('v36.screen', rows36)), expected);
  });

  it("reads SIPp 3.7's rows, which start with their index", () => {
    const rows37 = rows36.map((row, i) => `${i} :${row}`);
    assert.deepEqual(readMessageTable(screen('v37.screen', rows37)), expected);
  });

  it('reads nothing from a file that is not there', () => {
    assert.deepEqual(readMessageTable(join(dir, 'none.screen')), []);
  });
});
