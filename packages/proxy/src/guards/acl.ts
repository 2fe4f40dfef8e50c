import { isIP } from 'node:net';

/**
 * A source address allow-list of IPv4 and IPv6 CIDRs (`proxy.acl`), compiled once. IPv4-mapped
 * IPv6 addresses (`::ffff:10.0.0.1`) are matched as the IPv4 address they carry.
 */
export class SourceAcl {
  readonly #v4: { net: number; mask: number }[] = [];
  readonly #v6: { net: bigint; mask: bigint }[] = [];
  readonly #allowAll: boolean;

  constructor(cidrs: readonly string[]) {
    for (const cidr of cidrs) {
      const [addr = '', bitsText] = cidr.split('/');
      if (isIP(addr) === 4) {
        const bits = bitsText === undefined ? 32 : Number(bitsText);
        const mask = bits === 0 ? 0 : (~0 << (32 - bits)) >>> 0;
        this.#v4.push({ net: (v4ToInt(addr) & mask) >>> 0, mask });
      } else if (isIP(addr) === 6) {
        const bits = BigInt(bitsText === undefined ? 128 : Number(bitsText));
        const mask = bits === 0n ? 0n : ((1n << 128n) - 1n) ^ ((1n << (128n - bits)) - 1n);
        this.#v6.push({ net: v6ToBigInt(addr) & mask, mask });
      } else {
        throw new TypeError(`not a CIDR: ${cidr}`);
      }
    }
    this.#allowAll = this.#v4.some((r) => r.mask === 0) && this.#v6.some((r) => r.mask === 0n);
  }

  allows(address: string): boolean {
    if (this.#allowAll) return true;
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
    const addr = mapped?.[1] ?? address;
    const kind = isIP(addr);
    if (kind === 4) {
      const a = v4ToInt(addr);
      return this.#v4.some((r) => (a & r.mask) >>> 0 === r.net);
    }
    if (kind === 6) {
      const a = v6ToBigInt(addr);
      return this.#v6.some((r) => (a & r.mask) === r.net);
    }
    return false;
  }
}

function v4ToInt(addr: string): number {
  const p = addr.split('.').map(Number);
  return (((p[0] ?? 0) << 24) | ((p[1] ?? 0) << 16) | ((p[2] ?? 0) << 8) | (p[3] ?? 0)) >>> 0;
}

function v6ToBigInt(addr: string): bigint {
  let text = addr.split('%')[0] ?? '';
  // A trailing dotted quad (::ffff:1.2.3.4, 64:ff9b::1.2.3.4) becomes two hex groups.
  const quad = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (quad?.[1]) {
    const n = v4ToInt(quad[1]);
    text = `${text.slice(0, -quad[1].length)}${(n >>> 16).toString(16)}:${(n & 0xffff).toString(16)}`;
  }
  const [head = '', tail] = text.split('::');
  const h = head === '' ? [] : head.split(':');
  const t = tail === undefined || tail === '' ? [] : tail.split(':');
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  let v = 0n;
  for (const g of groups) v = (v << 16n) | BigInt(parseInt(g || '0', 16));
  return v;
}
