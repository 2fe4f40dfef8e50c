// The drachtio-server double's public API, for fslb's tests. See README.md.
export { DrachtioDouble, type DrachtioDoubleEvents, type DrachtioDoubleOptions } from './drachtio-double.js';
export { AppConnection } from './app-connection.js';
export type { RememberedChallenge } from './challenge-cache.js';
export {
  InjectedRequest,
  ProxyCommand,
  type CapturedResponse,
  type ProxyHandler,
  type ProxyReply,
  type ProxyScript,
  type ScriptedResponse,
} from './injected-request.js';
export { DEFAULT_TIMERS, ForwardedCall, type Peer, type SipTimers } from './sip-forwarder.js';
export { parseSipUri, parseVia, SipMessage, tagOf, uriOf, type SipHeader } from './sip-message.js';
export {
  buildSipRequest,
  g711Offer,
  sipRequest,
  type SipRequestSpec,
  type SipSource,
} from './sip-request.js';
export type { AppMessage, FramingOptions } from './wire.js';
