// The baseline of the real-peer CPS benchmark (bench/proxy-real-cps.bench.ts): the least a
// drachtio-srf proxy app can do. Every INVITE is proxied to one fixed destination, nothing else:
// no guards, no choice, no Redis, no logging per call.
// Usage: node bench/support/bare-srf-proxy.mjs <drachtio-host> <drachtio-port> <secret> <destination> [record-route]
import Srf from 'drachtio-srf';

const [host = '127.0.0.1', port = '9022', secret = 'cymru', destination = '127.0.0.1:5080', rr] =
  process.argv.slice(2);
const recordRoute = rr === 'record-route';
const srf = new Srf();
srf.on('connect', (err, hostports) => {
  if (err) console.error('connect refused', err);
  else console.log(`connected ${hostports}`);
});
srf.on('error', (err) => console.error('srf error', err.message));
srf.invite((req) => {
  req
    .proxy({ destination: [destination], recordRoute })
    .catch((err) => console.error('proxy failed', String(err)));
});
srf.connect({ host, port: Number(port), secret });
process.on('SIGTERM', () => {
  srf.disconnect();
  process.exit(0);
});
