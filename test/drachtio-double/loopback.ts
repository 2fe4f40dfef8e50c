import { isIP } from 'node:net';

/**
 * The double is a stand-in for drachtio-server in fslb's tests and demo, not a SIP server: it
 * binds loopback addresses only (127.0.0.0/8, ::1, `localhost`), so that it can never be put in
 * front of real traffic by mistake.
 */
export function assertLoopback(host: string, what: string): void {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  const loopback =
    h === 'localhost' ||
    h === '::1' ||
    (isIP(h) === 4 && h.startsWith('127.')) ||
    (isIP(h) === 6 && /^::ffff:127\./.test(h));
  if (!loopback) {
    throw new Error(
      `drachtio double: refusing to bind its ${what} to ${host}: it is fslb's test stand-in for ` +
        'drachtio-server and binds loopback only (127.0.0.0/8, ::1); put a real drachtio-server ' +
        'in front of real traffic',
    );
  }
}
