export { ADVANCE_REFRESH_MS, ADVANCE_SHARE, AdvanceSlots, type AdvanceSettings } from './advance-slots.js';
export {
  CallAccounting,
  RESERVE_BATCH,
  SlotMode,
  type AccountingSettings,
  type CallSlots,
  type ReserveOutcome,
} from './call-accounting.js';
export {
  DrachtioLink,
  type InboundRequest,
  type ProxyRequest,
  type ProxyResult,
  type TargetResponse,
} from './drachtio/drachtio-link.js';
export { SourceAcl } from './guards/acl.js';
export { BacklogShedder, type ShedSettings } from './guards/backlog-shedder.js';
export { readUdpBacklog, udpPorts, type UdpBacklog } from './guards/udp-backlog.js';
export { SourceRateLimiter, TokenBucket } from './guards/token-bucket.js';
export { ProxyMetrics } from './metrics.js';
export { accountingSettings, FslbProxy, routerParts, shedSettings, type ProxyOptions } from './proxy.js';
export { aorOf, Router, type RouterSettings } from './router.js';
export {
  PoolNodes,
  RouteTable,
  uriParts,
  type LimitUse,
  type RoutableRequest,
  type RouteDecision,
} from './routing/route-table.js';
export { combine, hashString, unitInterval } from './selection/hash.js';
export {
  hasRoom,
  loadScore,
  rendezvousScore,
  selectByAor,
  selectLeastLoaded,
  selectRoundRobin,
  selectWithAffinity,
  type SelectNode,
  type SelectOptions,
} from './selection/select.js';
export { optionsAnswer, Refusal, refusalAnswer, type SipAnswer } from './sip-answers.js';
export { ClusterView, EventEffect, type SnapshotReport } from './view/cluster-view.js';
export { hostPortOf, sipUri, ViewNode } from './view/view-node.js';
export { ViewSource, ViewSync } from './view/view-sync.js';
