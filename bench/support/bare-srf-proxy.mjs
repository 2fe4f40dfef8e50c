// The baseline of the real-peer CPS benchmark (bench/proxy-real-cps.bench.ts): the least a
// drachtio-srf proxy app can do. Every INVITE is proxied to one destination, nothing else: no
// guards, no choice, no Redis, no logging per call. With a second destination the calls take
// the two in turn (one destination per call), so that the callees carry what they carry behind
// fslb-proxy: behind one fixed destination the host ran one busy SIPp callee instead of two
// half-busy ones, and a SIPp process's CPU per call is not the same at half the rate.
// With `fslb-options` it asks drachtio-server for what fslb-proxy asks on every INVITE (both
// destinations, the first alternating, for sequential failover; its provisional and final
// timeouts; an X-Fslb-Slot header) and still does nothing else: the share of the gap between the
// two apps that is drachtio-server's work on those options, not the app's.
// Usage: node bench/support/bare-srf-proxy.mjs <drachtio-host> <drachtio-port> <secret> <destination> [record-route|-] [second-destination] [fslb-options]
import Srf from 'drachtio-srf';

const [
  host = '127.0.0.1',
  port = '9022',
  secret = 'cymru',
  destination = '127.0.0.1:5080',
  rr,
  second,
  mode,
] = process.argv.slice(2);
const recordRoute = rr === 'record-route';
let turn = 0;
/** Which of fslb's options (BENCH_BARE_OPTIONS, for investigations: a comma list; all by default). */
const only = new Set(
  (process.env.BENCH_BARE_OPTIONS ?? 'alternate,second,provisional,final,header').split(','),
);
/** fslb-proxy's options (its defaults: 2 s provisional, 30 s final timeout), with nothing chosen. */
const likeFslb = () => {
  const first = only.has('alternate') && turn++ % 2 === 1 ? second : destination;
  const other = first === destination ? second : destination;
  const opts = {
    destination: only.has('second') ? [first, other] : [first],
    remainInDialog: recordRoute,
    forking: 'sequential',
    followRedirects: false,
  };
  if (only.has('provisional')) opts.provisionalTimeout = '2000ms';
  if (only.has('final')) opts.finalTimeout = '30000ms';
  if (only.has('header')) opts.headers = { 'X-Fslb-Slot': `#bench:${turn}` };
  return opts;
};
/** One destination a call, the two in turn when there are two. */
const bare = () => ({
  destination: [second && turn++ % 2 === 1 ? second : destination],
  remainInDialog: recordRoute,
});
const options = mode === 'fslb-options' ? likeFslb : bare;
const srf = new Srf();
srf.on('connect', (err, hostports) => {
  if (err) console.error('connect refused', err);
  else console.log(`connected ${hostports}`);
});
srf.on('error', (err) => console.error('srf error', err.message));
srf.invite((req) => {
  req.proxy(options()).catch((err) => console.error('proxy failed', String(err)));
});
srf.connect({ host, port: Number(port), secret });
process.on('SIGTERM', () => {
  srf.disconnect();
  process.exit(0);
});
