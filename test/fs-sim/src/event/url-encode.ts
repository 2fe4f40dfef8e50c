/**
 * FreeSWITCH's URL encoding of event header values (`switch_url_encode`, used by
 * `switch_event_serialize` for `text/event-plain` and by the XML event format).
 *
 * Works on the UTF-8 bytes: a byte below 0x20, above 0x7E, or in FreeSWITCH's unsafe set becomes
 * `%XX` (upper-case hex). A `%` already followed by two upper-case hex digits is left alone, so a
 * value that looks encoded is not encoded twice (a quirk clients see: `%41` arrives as `A` after
 * decoding). Reference: src/switch_utils.c `switch_url_encode_opt`, SWITCH_URL_UNSAFE in
 * src/include/switch_utils.h (https://github.com/signalwire/freeswitch).
 */
const UNSAFE = new Set(Array.from('\r\n #%&+:;<=>?@[\\]^`{|}"', (c) => c.charCodeAt(0)));
const HEX = '0123456789ABCDEF';
const HEX_CODES = new Set(Array.from(HEX, (c) => c.charCodeAt(0)));
const PERCENT = 0x25;

export function fsUrlEncode(value: string): string {
  const bytes = Buffer.from(value, 'utf8');
  let out = '';
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i] ?? 0;
    if (b === PERCENT && i + 2 < bytes.length && isHex(bytes[i + 1]) && isHex(bytes[i + 2])) {
      out += '%';
      continue;
    }
    if (b < 0x20 || b > 0x7e || UNSAFE.has(b)) {
      out += `%${HEX[b >> 4] ?? '0'}${HEX[b & 0x0f] ?? '0'}`;
    } else {
      out += String.fromCharCode(b);
    }
  }
  return out;
}

function isHex(b: number | undefined): boolean {
  return b !== undefined && HEX_CODES.has(b);
}
