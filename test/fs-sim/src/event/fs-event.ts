import { fsUrlEncode } from './url-encode.js';

/**
 * One FreeSWITCH event: an ordered list of headers (names may repeat, as in FreeSWITCH) and an
 * optional body, with the three serialisations mod_event_socket sends. Byte-level facts from
 * src/switch_event.c (`switch_event_serialize`, `switch_event_serialize_json_obj`,
 * `switch_event_xmlize`) and src/switch_xml.c (`switch_xml_toxml`),
 * https://github.com/signalwire/freeswitch.
 */
export class FsEvent {
  readonly headers: [name: string, value: string][] = [];
  /** undefined = no body at all (FreeSWITCH's NULL); '' = an empty body. */
  body: string | undefined;

  constructor(readonly name: string) {}

  addHeader(name: string, value: string | number): this {
    this.headers.push([name, String(value)]);
    return this;
  }

  /** First value of a header, matched case-insensitively as FreeSWITCH does. */
  getHeader(name: string): string | undefined {
    const lower = name.toLowerCase();
    return this.headers.find(([n]) => n.toLowerCase() === lower)?.[1];
  }

  /**
   * `text/event-plain` body: `Name: url-encoded-value\n` per header (an empty value is written
   * `_undef_`), then `Content-Length: <bytes>\n\n<body>` when the body is not empty, else `\n`.
   */
  toPlain(): string {
    let out = '';
    for (const [name, value] of this.headers) {
      const encoded = fsUrlEncode(value);
      out += `${name}: ${encoded === '' ? '_undef_' : encoded}\n`;
    }
    if (this.body !== undefined && this.body.length > 0) {
      out += `Content-Length: ${Buffer.byteLength(this.body)}\n\n${this.body}`;
    } else {
      out += '\n';
    }
    return out;
  }

  /**
   * `text/event-json` body: one flat object of string values, unformatted, in header order
   * (repeated names are repeated, as cJSON does); with a body, `Content-Length` and `_body`.
   */
  toJson(): string {
    const parts = this.headers.map(([name, value]) => `${JSON.stringify(name)}:${JSON.stringify(value)}`);
    if (this.body !== undefined) {
      parts.push(`"Content-Length":${JSON.stringify(String(Buffer.byteLength(this.body)))}`);
      parts.push(`"_body":${JSON.stringify(this.body)}`);
    }
    return `{${parts.join(',')}}`;
  }

  /** `text/event-xml` body: headers as url-encoded element text, two-space indent. */
  toXml(): string {
    let out = '<event>\n  <headers>\n';
    for (const [name, value] of this.headers) {
      out += `    <${name}>${xmlText(fsUrlEncode(value))}</${name}>\n`;
    }
    out += '  </headers>\n';
    if (this.body !== undefined && this.body.length > 0) {
      out += `  <Content-Length>${Buffer.byteLength(this.body)}</Content-Length>\n`;
      out += `  <body>${xmlText(this.body)}</body>\n`;
    }
    out += '</event>\n';
    return out;
  }
}

function xmlText(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}
