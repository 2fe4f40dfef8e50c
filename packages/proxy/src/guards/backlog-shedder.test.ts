import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { configSchema } from '@fslb/shared';
import { captureLogger } from '../../../../test/support/log-capture.js';
import { shedSettings } from '../proxy.js';
import { BacklogShedder, type ShedSettings } from './backlog-shedder.js';
import { addUdpBacklog, udpPorts, type UdpBacklog } from './udp-backlog.js';

const SETTINGS: ShedSettings = {
  enabled: true,
  sampleMs: 50,
  highBytes: 100_000,
  holdMs: 200,
  hardBytes: 200_000,
  lowBytes: 25_000,
};

/** A logger at info and its lines, parsed. */
function logLines(): {
  log: ReturnType<typeof captureLogger>['log'];
  lines: () => { level: number; msg: string }[];
} {
  const { log, text } = captureLogger('info');
  return {
    log,
    lines: () =>
      text()
        .split('\n')
        .filter((l) => l !== '')
        .map((l) => JSON.parse(l) as { level: number; msg: string }),
  };
}

const at = (queuedBytes: number, drops = 0): UdpBacklog => ({ sockets: 1, queuedBytes, drops });
const near = (actual: number, expected: number): void =>
  assert.ok(Math.abs(actual - expected) < 1e-9, `admission ${actual}, expected ${expected}`);
/** Readings one by one, each as [backlog, the admission expected after it]. */
const walk = (s: BacklogShedder, readings: readonly (readonly [number, number])[]): void => {
  for (const [q, admit] of readings) {
    s.sample(at(q));
    near(s.admitRatio, admit);
  }
};

describe('BacklogShedder', () => {
  it('admits everything while the backlog stays at or under the high mark', () => {
    const s = new BacklogShedder({ settings: SETTINGS, log: logLines().log, random: () => 0.999 });
    for (const q of [0, 30_000, 100_000, 5_000]) s.sample(at(q));
    assert.equal(s.admitRatio, 1);
    assert.equal(s.shed(), false);
  });

  it('lets a burst past the high mark drain: admission falls only after the backlog stays past it for the hold', () => {
    const s = new BacklogShedder({ settings: SETTINGS, log: logLines().log });
    // 200 ms hold at 50 ms a reading: four readings past the mark are still a burst.
    for (const q of [150_000, 160_000, 170_000, 180_000]) s.sample(at(q));
    near(s.admitRatio, 1);
    s.sample(at(90_000));
    for (const q of [150_000, 160_000, 170_000, 180_000]) s.sample(at(q));
    near(s.admitRatio, 1);
    // The fifth in a row: a standing queue.
    s.sample(at(180_000));
    near(s.admitRatio, 0.75);
    // The hold starts again: a queue still between the marks waits it out before the next cut.
    for (let i = 0; i < 4; i++) s.sample(at(185_000 + i));
    near(s.admitRatio, 0.75);
    s.sample(at(190_000));
    near(s.admitRatio, 0.5625);
  });

  it('holds while a backlog past the mark shrinks, and grows admission back as it drains', () => {
    const s = new BacklogShedder({ settings: SETTINGS, log: logLines().log });
    for (let i = 0; i < 5; i++) s.sample(at(150_000));
    near(s.admitRatio, 0.75);
    // Past the mark, long enough, but smaller than the last reading: the cut works, it holds.
    for (let i = 0; i < 8; i++) s.sample(at(140_000 - i * 1000));
    near(s.admitRatio, 0.75);
    // At or under the high mark: 5 points back at each reading, growing or not; 10 at the low one.
    walk(s, [
      [100_000, 0.8],
      [60_000, 0.85],
      [70_000, 0.9],
      [25_000, 1],
    ]);
  });

  it('halves admission from the second reading in a row past the hard mark that has not shrunk, to none, without waiting for the hold', () => {
    const s = new BacklogShedder({ settings: SETTINGS, log: logLines().log });
    // One reading there that drains the next moment is a pause, not a surge.
    walk(s, [
      [250_000, 1],
      [50_000, 1],
      [250_000, 1],
      [260_000, 0.5],
      [270_000, 0.25],
      [240_000, 0.25],
    ]);
    for (let i = 0; i < 10; i++) s.sample(at(300_000 + i));
    assert.equal(s.admitRatio, 0, 'below 1 % nothing is admitted');
    assert.equal(s.shed(), true);
    // Past the high mark it holds; under it, it grows back.
    walk(s, [
      [150_000, 0],
      [100_000, 0.05],
      [25_000, 0.15],
    ]);
    for (let i = 0; i < 10; i++) s.sample(at(0));
    assert.equal(s.admitRatio, 1);
    assert.equal(s.shed(), false);
  });

  it('once the rate drachtio-server drains at is known, judges the backlog by the wait it means', () => {
    // 100 ms of wait at 5,000 bytes/ms: the high mark at 500 kB, the hard one at 1 MB, the low
    // one at 250 kB, where the byte marks were 100, 200 and 25 kB.
    const drain: { rate?: number } = {};
    const settings = { ...SETTINGS, delayMs: 100, bufferBytes: 8 << 20 };
    const s = new BacklogShedder({ settings, log: logLines().log, drainRate: () => drain.rate });
    // Not known yet: the byte marks.
    walk(s, [
      [250_000, 1],
      [260_000, 0.5],
    ]);
    assert.equal(s.waitMs, undefined);
    for (let i = 0; i < 12; i++) s.sample(at(0));
    near(s.admitRatio, 1);
    drain.rate = 5000;
    // 50-90 ms of wait, past every byte mark: held as long as it lasts, nothing shed.
    for (let i = 0; i < 20; i++) s.sample(at(250_000 + i * 10_000));
    near(s.admitRatio, 1);
    assert.equal(s.waitMs, 440_000 / 5000);
    // Past 200 ms for a second reading in a row: a surge, halved.
    walk(s, [
      [1_100_000, 1],
      [1_150_000, 0.5],
    ]);
    // Between 100 and 200 ms, shrinking: held; at 50 ms or under, grows back by 10 points.
    walk(s, [
      [900_000, 0.5],
      [450_000, 0.55],
      [240_000, 0.65],
    ]);
  });

  it('keeps the marks a wait stands for within half the socket buffer', () => {
    // A fast drain: 100 ms would be 10 MB, past the 4 MB buffer.
    const settings = { ...SETTINGS, delayMs: 100, bufferBytes: 4_000_000 };
    const s = new BacklogShedder({ settings, log: logLines().log, drainRate: () => 100_000 });
    // 2 MB: half the buffer. Past it for the hold (200 ms, four readings) and not shrinking.
    for (let i = 0; i < 4; i++) s.sample(at(2_000_001));
    near(s.admitRatio, 1);
    s.sample(at(2_000_001));
    near(s.admitRatio, 0.75);
    // The hard mark halfway from there to the buffer's size: 3 MB.
    walk(s, [
      [3_000_001, 0.75],
      [3_000_002, 0.375],
    ]);
  });

  it('never puts the marks under the byte ones, however slow the drain measured', () => {
    // 100 ms at 100 bytes/ms would be a 10 kB mark: a probe delayed by the proxy's own turns.
    const settings = { ...SETTINGS, delayMs: 100, bufferBytes: 8 << 20 };
    const s = new BacklogShedder({ settings, log: logLines().log, drainRate: () => 100 });
    walk(s, [
      [150_000, 1],
      [150_000, 1],
      [150_000, 1],
      [150_000, 1],
      [150_000, 0.75],
    ]);
    assert.equal(s.waitMs, 1500, 'the wait reported is still the measured one');
    walk(s, [
      [250_000, 0.75],
      [260_000, 0.375],
    ]);
  });

  it('keeps to the byte marks without a wait to judge by (marks set in bytes)', () => {
    const s = new BacklogShedder({ settings: SETTINGS, log: logLines().log, drainRate: () => 5000 });
    walk(s, [
      [250_000, 1],
      [260_000, 0.5],
    ]);
    assert.equal(s.waitMs, undefined);
  });

  it('reads four times less often while the socket holds next to nothing and nothing is shed', () => {
    const s = new BacklogShedder({ settings: SETTINGS, log: logLines().log });
    // The low mark is 25 kB: quiet at or under a sixteenth of it.
    s.sample(at(1000));
    assert.equal(s.nextReadingMs, 200);
    s.sample(at(2000));
    assert.equal(s.nextReadingMs, 50);
    s.sample(at(0, 1)); // a drop: admission halved, back to every interval while it grows back
    near(s.admitRatio, 0.5);
    assert.equal(s.nextReadingMs, 50);
    for (let i = 0; i < 6; i++) s.sample(at(0, 1));
    assert.equal(s.admitRatio, 1);
    assert.equal(s.nextReadingMs, 200);
  });

  it('sheds the share not admitted, by its random draw', () => {
    let draw = 0;
    const s = new BacklogShedder({ settings: SETTINGS, log: logLines().log, random: () => draw });
    s.sample(at(250_000));
    s.sample(at(250_000));
    draw = 0.49;
    assert.equal(s.shed(), false);
    draw = 0.51;
    assert.equal(s.shed(), true);
  });

  it('halves admission at a datagram dropped since the last reading, whatever the backlog', () => {
    const s = new BacklogShedder({ settings: SETTINGS, log: logLines().log });
    s.sample(at(0, 40)); // drops before watching started are history
    assert.equal(s.admitRatio, 1);
    s.sample(at(0, 41));
    near(s.admitRatio, 0.5);
    s.sample(at(0, 41));
    near(s.admitRatio, 0.6);
  });

  it('logs an episode once when it starts and once when it ends; episodes close behind it are added to the next line', () => {
    let now = 0;
    const { log, lines } = logLines();
    const s = new BacklogShedder({ settings: SETTINGS, log, random: () => 0.95, now: () => now });
    const episode = (): void => {
      s.sample(at(250_000, 0));
      s.sample(at(250_000, 0));
      for (let i = 0; i < 3; i++) assert.equal(s.shed(), true);
      for (let i = 0; i < 10; i++) s.sample(at(0, 0));
      assert.equal(s.admitRatio, 1);
    };
    episode();
    now = 1000;
    episode();
    now = 2000;
    episode();
    now = 20_000;
    episode();
    const got = lines();
    const starts = got.filter((l) => l.msg.startsWith('drachtio-server is falling behind'));
    const ends = got.filter((l) => l.msg.startsWith('drachtio-server caught up')) as unknown as {
      shed: number;
      earlierEpisodes?: number;
      earlierShed?: number;
    }[];
    assert.equal(starts.length, 2, 'the episodes 1 s and 2 s after a logged one are not logged');
    assert.deepEqual(
      ends.map((e) => [e.shed, e.earlierEpisodes, e.earlierShed]),
      [
        [3, undefined, undefined],
        [3, 2, 6],
      ],
    );
  });

  it('ends an episode when drachtio-server goes, saying so, and admits everything again', () => {
    const { log, lines } = logLines();
    const s = new BacklogShedder({ settings: SETTINGS, log, random: () => 0.95 });
    s.sample(at(250_000));
    s.sample(at(250_000));
    assert.equal(s.shed(), true);
    s.stop();
    assert.equal(s.admitRatio, 1);
    assert.equal(s.shed(), false);
    const ends = lines().filter((l) => l.msg.includes('shedding stopped')) as unknown as {
      msg: string;
      shed: number;
    }[];
    assert.deepEqual(
      ends.map((e) => [e.msg, e.shed]),
      [['drachtio-server disconnected: shedding stopped', 1]],
    );
  });

  it('watches only a UDP port it can see, and says why not otherwise', () => {
    const { log, lines } = logLines();
    const seen: number[][] = [];
    const s = new BacklogShedder({
      settings: SETTINGS,
      log,
      read: (ports) => {
        seen.push([...ports]);
        return { sockets: ports.has(5080) ? 1 : 0, queuedBytes: 0, drops: 0 };
      },
    });
    s.watch('tcp/10.0.0.1:5060');
    assert.equal(s.watching, false);
    s.watch('udp/10.0.0.1:5060,tcp/10.0.0.1:5060');
    assert.equal(s.watching, false);
    s.watch('udp/10.0.0.1:5080');
    assert.equal(s.watching, true);
    s.stop();
    assert.equal(s.watching, false);
    assert.deepEqual(seen, [[5060], [5080]]);
    const msgs = lines().map((l) => l.msg);
    assert.match(msgs[0] ?? '', /no UDP SIP port/);
    assert.match(msgs[1] ?? '', /not visible from this proxy/);
    assert.match(msgs[2] ?? '', /watching drachtio-server's SIP socket backlog/);
  });

  it('does nothing when proxy.overload.enabled is false', () => {
    const s = new BacklogShedder({
      settings: { ...SETTINGS, enabled: false },
      log: logLines().log,
      read: () => assert.fail('read while disabled'),
    });
    s.watch('udp/127.0.0.1:5060');
    assert.equal(s.watching, false);
  });
});

describe('udp backlog readings', () => {
  it('takes the UDP ports from the hostports drachtio-server sends', () => {
    assert.deepEqual(
      udpPorts('udp/10.0.0.1:5060,tcp/10.0.0.1:5060,udp/[2001:db8::1]:5070,wss/1.2.3.4:443'),
      [5060, 5070],
    );
    assert.deepEqual(udpPorts('tcp/10.0.0.1:5060'), []);
  });

  it('adds up the sockets bound to the ports asked for, at any address, from /proc/net/udp text', () => {
    const text = [
      '   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops',
      '  101: 0100007F:13C4 00000000:0000 07 00000000:00000A00 00:00000000 00000000     0        0 1 2 0000000000000000 7',
      '  102: 00000000:13C4 00000000:0000 07 00000000:00000100 00:00000000 00000000     0        0 2 2 0000000000000000 0',
      '  103: 0100007F:13C5 00000000:13C4 01 00000000:00FF0000 00:00000000 00000000     0        0 3 2 0000000000000000 99',
      '',
    ].join('\n');
    const out = { sockets: 0, queuedBytes: 0, drops: 0 };
    addUdpBacklog(text, new Set([5060]), out);
    // The third socket only talks to 5060 (remote address): not counted.
    assert.deepEqual(out, { sockets: 2, queuedBytes: 0xa00 + 0x100, drops: 7 });
  });
});

describe('shedSettings', () => {
  const cfg = (overload: Record<string, unknown> = {}) =>
    configSchema.parse({ proxy: { overload } }).proxy.overload;
  it('derives the marks from the default socket buffer: a half and a quarter, at most 1 MiB and 256 KiB', () => {
    assert.deepEqual(shedSettings(cfg(), 212_992), {
      enabled: true,
      sampleMs: 50,
      highBytes: 106_496,
      holdMs: 500,
      // Twice the high mark would be the whole buffer: halfway to it instead.
      hardBytes: 159_744,
      lowBytes: 53_248,
      // Until the drain rate is known; then the marks are what drains in 150 ms, within the buffer.
      delayMs: 150,
      bufferBytes: 212_992,
    });
    const big = shedSettings(cfg(), 8 << 20);
    assert.equal(big.highBytes, 1 << 20);
    assert.equal(big.hardBytes, 2 << 20);
    assert.equal(big.lowBytes, 256 << 10);
  });
  it('keeps marks that are set, and moves the high one above a low one set alone', () => {
    const set = shedSettings(cfg({ highBytes: 500_000, lowBytes: 100_000, holdMs: 200 }), 212_992);
    assert.equal(set.highBytes, 500_000);
    assert.equal(set.lowBytes, 100_000);
    assert.equal(set.holdMs, 200);
    // A high mark past the buffer's size: no room for a hard one above it.
    assert.equal(set.hardBytes, 500_000);
    const lowOnly = shedSettings(cfg({ lowBytes: 300_000 }), 212_992);
    assert.equal(lowOnly.highBytes, 600_000);
    assert.equal(lowOnly.lowBytes, 300_000);
    // Marks set in bytes stay bytes: no wait is judged.
    assert.equal(set.delayMs, undefined);
    assert.equal(lowOnly.delayMs, undefined);
    assert.equal(shedSettings(cfg({ delayMs: 80 }), 212_992).delayMs, 80);
  });
  it('refuses a low mark at or over the high one', () => {
    const r = configSchema.safeParse({ proxy: { overload: { highBytes: 1000, lowBytes: 1000 } } });
    assert.equal(r.success, false);
    assert.match(JSON.stringify(r.error.issues), /proxy\.overload\.highBytes/);
  });
});
