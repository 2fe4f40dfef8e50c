export {
  EslConnection,
  EslError,
  EslErrorCode,
  type EslEventMessage,
  type EslTarget,
} from './esl/esl-connection.js';
export { readFlag, readHeartbeat, readProfileRunning, readStatus } from './health/fs-readings.js';
export { assessNode, backoffDelay, effectiveMaxSessions, type CoreFacts } from './health/node-health.js';
export { SessionCount } from './health/session-count.js';
export { MonitorMetrics } from './metrics.js';
export { Monitor, type MonitorOptions } from './monitor.js';
export {
  ConnectionState,
  NodeWatcher,
  SUBSCRIBED_EVENTS,
  type NodeSnapshot,
  type WatcherSettings,
} from './node-watcher.js';
export { fairShare, planClaims, rankNodes, type ClaimInput, type ClaimPlan } from './ownership.js';
