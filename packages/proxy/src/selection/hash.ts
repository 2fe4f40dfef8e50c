/**
 * Small, fast, well-mixed 32-bit hashes for rendezvous (highest random weight) hashing. Not
 * cryptographic: they only need to spread keys evenly and be the same in every proxy.
 */

/** FNV-1a over UTF-16 code units, finished with murmur3's fmix32 so that every bit avalanches. */
export function hashString(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return fmix32(h);
}

/** Combines a key's hash with a node's hash into one uniform 32-bit value. */
export function combine(keyHash: number, nodeHash: number): number {
  return fmix32((keyHash ^ Math.imul(nodeHash, 0x9e3779b1)) >>> 0);
}

/** murmur3's 32-bit finaliser. */
export function fmix32(x: number): number {
  let h = x >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** A 32-bit hash as a number in (0, 1), never 0 or 1, for weighted rendezvous scores. */
export function unitInterval(h: number): number {
  return (h + 0.5) / 4294967296;
}
