export { FsNode, NodeState, type FsNodeEvents, type FsNodeOptions, type ShutdownOptions } from './fs-node.js';
export { FsCluster, type FsClusterOptions } from './fs-cluster.js';
export { FsEvent } from './event/fs-event.js';
export { fsUrlEncode } from './event/url-encode.js';
export type { MalformedKind } from './esl/esl-frames.js';
export type { Refusal } from './core/switch-core.js';
export { CallState, type CallInfo } from './sip/sip-call.js';
export type { InviteRefusal } from './sip/sip-server.js';
export {
  SipUac,
  UacCall,
  type InviteOptions,
  type SipTarget,
  type SipUacOptions,
  type UacResponse,
} from './uac/sip-uac.js';
