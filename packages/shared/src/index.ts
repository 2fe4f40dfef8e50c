export { callIdentity } from './call-identity.js';
export { advanceSlotOf, advanceSlotPrefix, SLOT_HEADER } from './advance-slot.js';
export { limitEntry, limitIdOf, LIMITS_HEADER, parseLimitEntries } from './limit-entry.js';
export { DEFAULT_POOL } from './config/routing.js';
export { ClusterKeys, globEscape, isValidPrefix, nodeIdRe } from './cluster-keys.js';
export { ShardMap } from './shard-map.js';
export { groupBy } from './group-by.js';
export {
  ClusterStore,
  SlotStatus,
  UnknownNodeError,
  VIEW_CHUNK,
  type AdvanceBook,
  type AdvanceRow,
  type InvalidRecord,
  type LimitHold,
  type LiveCall,
  type NodeLoad,
  type NodeWrite,
  type ReserveRequest,
  type ReserveResult,
  type ViewEntry,
  type ViewSnapshot,
  type WriteOutcome,
} from './cluster-store.js';
export {
  decodeClusterEvent,
  encodeClusterEvent,
  type ClusterEvent,
  type LoadFigure,
  type NodeCause,
} from './cluster-event.js';
export {
  AdminState,
  decodeNodeRecord,
  encodeNodeRecord,
  NodeState,
  type DecodeResult,
  type NodeRecord,
} from './node-record.js';
export { parseDuration } from './config/duration.js';
export { ConfigWatcher } from './config/config-watcher.js';
export {
  configPathFrom,
  loadConfig,
  loadConfigFile,
  parseConfig,
  parseConfigText,
  type ConfigUse,
} from './config/load-config.js';
export {
  configSchema,
  defaultInstanceId,
  MAX_LEASE_TTL_MS,
  parseHostPort,
  type ConfigInput,
  type FslbConfig,
  type LimitConfig,
  type PoolConfig,
  type RouteConfig,
  type RouteMatch,
  type MonitorConfig,
  type NodeConfig,
  type ProxyConfig,
  type RedisConfig,
} from './config/schema.js';
export { ConfigError, FslbError, formatIssues, type ConfigIssue } from './errors.js';
export { createLogger, flushLogger, type Logger, type LoggerSettings } from './logger.js';
export { HealthHttpServer, type HealthSource, type MetricsRegistry } from './http-server.js';
export { REDACTED, redactConfig, redactUrl } from './redact.js';
export {
  clusterOptions,
  createRedis,
  duplicateSubscriber,
  onMessage,
  publish,
  reconnectDelay,
  scanKeys,
  redisOptions,
  RedisConnections,
  type Redis,
  subscribe,
  SUBSCRIBER_SLOTS_REFRESH_MS,
  type RedisConnectionOptions,
} from './redis-connection.js';
export { runMain, type MainContext } from './run-main.js';
export { FSLB_VERSION } from './version.js';
