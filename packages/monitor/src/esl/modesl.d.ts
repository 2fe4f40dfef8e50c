// Type declarations for modesl 1.2.1 (CommonJS, ships no types). Only what fslb touches.
// fslb code reaches modesl through packages/monitor/src/esl/modesl.ts alone; tests of the
// FreeSWITCH simulator import it directly, since they exist to be driven by the real client.
declare module 'modesl' {
  import type { Socket } from 'node:net';

  export interface EslEvent {
    /** Header value, or null (not undefined) when absent. */
    getHeader(name: string): string | null;
    getBody(): string;
    getType(): string | null;
    serialize(format?: 'plain' | 'json' | 'xml'): string;
    headers: { name: string; value: string }[];
    body?: string;
  }

  export type EventListener = (event: EslEvent, headers: Record<string, string>, body: string) => void;

  export class Connection {
    constructor(host: string, port: number, password: string, ready?: () => void);
    socket: Socket | null;
    authed: boolean;
    connected(): boolean;
    send(command: string, args?: Record<string, string>): void;
    sendRecv(command: string, cb?: (event: EslEvent) => void): void;
    sendRecv(command: string, args: Record<string, string> | null, cb?: (event: EslEvent) => void): void;
    api(command: string, cb: (event: EslEvent) => void): void;
    api(command: string, args: string | string[], cb: (event: EslEvent) => void): void;
    bgapi(command: string, cb: (event: EslEvent) => void): void;
    bgapi(command: string, args: string | string[], cb: (event: EslEvent) => void): void;
    bgapi(command: string, args: string | string[], jobid: string, cb: (event: EslEvent) => void): void;
    events(type: 'plain' | 'json' | 'xml', events: string | string[], cb?: (event: EslEvent) => void): void;
    subscribe(events: string | string[], cb?: (event: EslEvent) => void): void;
    disconnect(): void;
    on(event: 'error', listener: (err: Error) => void): this;
    on(event: string, listener: EventListener): this;
    once(event: 'error', listener: (err: Error) => void): this;
    once(event: string, listener: EventListener): this;
    off(event: string, listener: (...args: never[]) => void): this;
    removeAllListeners(event?: string): this;
  }

  interface Esl {
    Connection: typeof Connection;
    setLogLevel(level: number): void;
  }
  const esl: Esl;
  export default esl;
}
