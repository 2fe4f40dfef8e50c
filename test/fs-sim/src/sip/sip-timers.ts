/**
 * SIP timer values (RFC 3261 §17 and Table 4), in milliseconds, in one place. Retransmissions
 * happen only over UDP.
 */
export const SIP_TIMERS = {
  /** RTT estimate; first retransmit interval. */
  T1: 500,
  /** Maximum retransmit interval for non-INVITE requests and INVITE responses. */
  T2: 4000,
  /** 64·T1: how long a transaction waits before it gives up (Timers B, F, H; 2xx without ACK). */
  TRANSACTION_TIMEOUT: 64 * 500,
  /** How long a completed server transaction keeps its response to absorb retransmissions (J). */
  KEEP_COMPLETED: 64 * 500,
} as const;

/** What a 503 from a busy, paused or shutting-down node carries (sofia's Retry-After). */
export const BUSY_RETRY_AFTER_S = 300;
