import { callIdentity, LIMITS_HEADER, SLOT_HEADER, type Logger } from '@fslb/shared';
import { SlotMode, type CallAccounting, type CallSlots } from './call-accounting.js';
import { CHALLENGE_MEMORY_MS, ChallengeMemo, type Challenge } from './challenges.js';
import type { InboundRequest, ProxyResult } from './drachtio/drachtio-link.js';
import type { SourceAcl } from './guards/acl.js';
import { RefusalLog, type RefusalLogSettings } from './guards/refusal-log.js';
import type { RequestClass, SourceLimits } from './guards/source-limits.js';
import type { TokenBucket } from './guards/token-bucket.js';
import type { ProxyMetrics } from './metrics.js';
import { PoolNodes, type LimitUse, type RouteTable } from './routing/route-table.js';
import {
  hasRoom,
  selectByAor,
  selectLeastLoaded,
  selectRoundRobin,
  selectWithAffinity,
} from './selection/select.js';
import { limitAnswer, optionsAnswer, Refusal, refusalAnswer, type SipAnswer } from './sip-answers.js';
import type { ClusterView } from './view/cluster-view.js';
import { hostPortOf, type ViewNode } from './view/view-node.js';

export interface RouterSettings {
  maxTargets: number;
  recordRoute: boolean;
  provisionalTimeoutMs: number;
  finalTimeoutMs: number;
  retryAfterSec: number;
  /** Header whose value pins a call to one node by rendezvous hashing (a conference id). */
  affinityHeader: string;
  /** Whose affinity header is honoured: trusted sources only, or any. */
  affinityFrom: 'trusted' | 'any';
  /** An INVITE from one of the cluster's own nodes: refused with 482, or routed. */
  fromNodes: 'reject' | 'route';
  /** The view is trusted for OPTIONS answers while it heard from Redis this recently. */
  viewMaxAgeMs: number;
  balance: 'least-loaded' | 'round-robin';
  /** Reserve a slot in Redis before proxying; off, the view alone decides. */
  reservations: boolean;
  /** Which routed requests get an outcome line (`log.calls`): those that did not connect, all, none. */
  callLog: 'failed' | 'all' | 'none';
}

/** Candidates for one call: the nodes to offer Redis, each with its pool's place in the route. */
interface Candidates {
  nodes: ViewNode[];
  groups: number[];
}

/** How one request ended, as logged and counted. */
export interface Outcome {
  outcome: string;
  status: number;
  /** The first target: the node chosen (for a challenge, the node that challenged). */
  node?: string;
  /** The node whose 2xx connected the call, when its Contact tells. */
  answeredBy?: string;
  tried: string[];
  accounting?: string;
  /** An INVITE answering a digest challenge, sent to the node that issued it. */
  retryOf?: string;
  /** The route that matched, when the configuration has routes of its own. */
  route?: string;
  /** The limit that refused the call. */
  limit?: string;
}

/** What the router does in one request's life, for the fault path's cleanup. */
interface Attempt {
  /** The request has been answered or handed to drachtio-server's proxy: no 500 after that. */
  handedOff: boolean;
  /** Slots held and not yet handed back. */
  slots: CallSlots | undefined;
}

/**
 * How long a retry with credentials waits, at most, for the attempt of the same call that is
 * still being wound up (its challenge not yet recorded). That attempt has its answer already;
 * what is left is a few turns of this process's event loop.
 */
const CHALLENGE_WAIT_MS = 50;

/** How often requests past their deadline are given up on, ms (see `Router.#inFlight`). */
const EXPIRY_SWEEP_MS = 1000;

const delay = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms).unref());

/** The answer to this proxy's own probe of drachtio-server's queue. */
const PROBE_ANSWER: SipAnswer = { status: 200, reason: 'OK', headers: {} };

/** Refusal lines: one per source per window, each with its own words. */
const REFUSAL_TEXT: Partial<Record<Refusal, string>> = {
  [Refusal.Forbidden]: 'source outside proxy.acl: answered 403',
  [Refusal.RateLimited]: 'source over its rate limit (proxy.rateLimit): answered 503',
  [Refusal.Overloaded]: 'replica over proxy.maxCps: answered 503',
  [Refusal.Backlog]: "drachtio-server's SIP socket backing up (proxy.overload): answered 503",
  [Refusal.InDialog]: 'INVITE with a To tag for a dialog this proxy does not hold: answered 481',
  [Refusal.Loop]: 'INVITE sent by a cluster node (proxy.fromNodes: reject): answered 482',
  [Refusal.Error]: 'request failed inside fslb: answered 500',
  [Refusal.OwnHeader]: `INVITE carrying fslb's own ${LIMITS_HEADER} or ${SLOT_HEADER} header: answered 403`,
};

/**
 * The request path: admission (ACL, per-source rate, in-dialog and loop checks, replica CPS,
 * shutdown), the choice of targets, the reservation, `req.proxy` with serial failover, then the
 * release of what the call no longer needs.
 *
 * Admission runs in that order so that what one source is refused never costs another source
 * anything: a request spends its source's own tokens first, and only a request its source may
 * send reaches the replica-wide budget that every source shares. Refusals are counted by reason
 * and logged sampled (`RefusalLog`); a request that was routed gets one outcome line.
 */
export class Router {
  readonly #view: ClusterView;
  readonly #accounting: CallAccounting;
  readonly #settings: RouterSettings;
  readonly #acl: SourceAcl;
  readonly #limits: SourceLimits;
  readonly #cps: TokenBucket;
  readonly #metrics: ProxyMetrics;
  readonly #log: Logger;
  readonly #refusals: RefusalLog;
  readonly #challenges: ChallengeMemo;
  #routes: RouteTable;
  #poolNodes: PoolNodes<ViewNode>;
  /**
   * The per-request outcome line. Its fields are fixed and hold no secret, so it skips the
   * root logger's wildcard redaction, which costs more than the line itself.
   */
  readonly #callLog: Logger;
  readonly #random: () => number;
  readonly #shed: () => boolean;
  readonly #isProbe: (callId: string) => boolean;
  /** drachtio-server's proxy timeouts, as it takes them ('2000ms'), made once. */
  readonly #timeouts: { provisional: string; final: string };
  /**
   * Requests waiting for drachtio-server's answer, each with a way to give up on it and the time
   * (monotonic ms) it is given up on. One clock for them all (`#expire`, every second while any
   * waits): the deadline is seconds away and a timer per call cost more than the sweep.
   */
  readonly #inFlight = new Map<(why: string) => void, number>();
  #expiry: NodeJS.Timeout | undefined;
  /**
   * INVITEs being proxied, by call, each settling when its outcome has been dealt with. A retry
   * with credentials can reach the app in the same read as the `done` of the attempt that was
   * challenged, before that attempt's outcome (and its challenge) is recorded: it waits for it.
   */
  readonly #proxying = new Map<string, { waiters: (() => void)[] | undefined }>();
  #draining = false;
  #idle: (() => void) | undefined;
  #turn = 0;

  constructor(opts: {
    view: ClusterView;
    accounting: CallAccounting;
    settings: RouterSettings;
    routes: RouteTable;
    acl: SourceAcl;
    limits: SourceLimits;
    /** The replica's INVITE rate (`proxy.maxCps`). */
    cps: TokenBucket;
    metrics: ProxyMetrics;
    log: Logger;
    random?: () => number;
    refusalLog?: Partial<RefusalLogSettings>;
    /** Whether to shed this new INVITE while drachtio-server is behind (`BacklogShedder.shed`). */
    shed?: () => boolean;
    /** Whether an OPTIONS is this proxy's own probe of drachtio-server's queue (`BacklogShedder.isProbe`). */
    isProbe?: (callId: string) => boolean;
  }) {
    this.#view = opts.view;
    this.#accounting = opts.accounting;
    this.#settings = opts.settings;
    this.#routes = opts.routes;
    this.#poolNodes = new PoolNodes(opts.routes);
    this.#acl = opts.acl;
    this.#limits = opts.limits;
    this.#cps = opts.cps;
    this.#metrics = opts.metrics;
    this.#log = opts.log;
    this.#callLog = opts.log.child({}, { redact: [] });
    this.#refusals = new RefusalLog(this.#callLog, opts.refusalLog);
    this.#challenges = new ChallengeMemo((c) => {
      if (c.slots) this.#accounting.release(c.slots);
    });
    this.#random = opts.random ?? Math.random;
    this.#shed = opts.shed ?? (() => false);
    this.#isProbe = opts.isProbe ?? (() => false);
    this.#timeouts = {
      provisional: `${opts.settings.provisionalTimeoutMs}ms`,
      final: `${opts.settings.finalTimeoutMs}ms`,
    };
  }

  get inFlight(): number {
    return this.#inFlight.size;
  }

  /** Challenges whose retry this replica is waiting for (metrics, tests). */
  get challenges(): number {
    return this.#challenges.size;
  }

  /** True while this replica can route a call: a fresh view with a node that has room. */
  canRoute(now = performance.now()): boolean {
    if (this.#draining || !this.#view.loaded) return false;
    if (now - this.#view.touchedAt > this.#settings.viewMaxAgeMs) return false;
    return this.#view.nodes.some(hasRoom);
  }

  /** New routing rules, for the requests that arrive from now on. */
  setRoutes(routes: RouteTable): void {
    this.#routes = routes;
    this.#poolNodes = new PoolNodes(routes);
  }

  /** Stops taking new requests; resolves when the ones in progress have finished. */
  drain(): Promise<void> {
    this.#draining = true;
    if (this.#inFlight.size === 0) return Promise.resolve();
    return new Promise((resolve) => (this.#idle = resolve));
  }

  /** drachtio-server is gone: its answers to requests in progress will never come. */
  abandonInFlight(why: string): void {
    for (const give of [...this.#inFlight.keys()]) give(why);
  }

  /** Gives up on the requests whose deadline has passed; stops once none waits. */
  #expire(): void {
    const now = performance.now();
    for (const [give, deadline] of this.#inFlight) if (deadline <= now) give('timeout');
    if (this.#inFlight.size === 0) {
      clearInterval(this.#expiry);
      this.#expiry = undefined;
    }
  }

  /** Ends what the router holds on its own: kept challenge slots, the refusal log's window. */
  close(): void {
    clearInterval(this.#expiry);
    this.#expiry = undefined;
    this.#challenges.close();
    this.#refusals.close();
  }

  /**
   * Takes one request. Never throws and never leaves it unanswered: a fault inside fslb is
   * logged (sampled), answered 500 unless the request was already answered or proxied, and
   * whatever slot it held is handed back.
   */
  handle(req: InboundRequest): void {
    const attempt: Attempt = { handedOff: false, slots: undefined };
    let routed: Promise<void>;
    try {
      routed = this.#route(req, attempt);
    } catch (err) {
      routed = Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
    routed.catch((err: unknown) => this.#fault(req, attempt, err));
  }

  #fault(req: InboundRequest, attempt: Attempt, err: unknown): void {
    try {
      if (attempt.slots) this.#accounting.release(attempt.slots);
      attempt.slots = undefined;
      this.#metrics.refusals.inc({ reason: Refusal.Error });
      this.#metrics.requests.count(req.method, Refusal.Error);
      const text = REFUSAL_TEXT[Refusal.Error] ?? Refusal.Error;
      this.#refusals.note(
        Refusal.Error,
        'fslb',
        text,
        { err, method: req.method, callId: req.callId },
        performance.now(),
      );
      if (!attempt.handedOff) {
        attempt.handedOff = true;
        this.#answer(req, refusalAnswer(Refusal.Error, this.#settings.retryAfterSec));
      }
    } catch (again) {
      this.#log.error({ err: again }, 'could not answer a request that failed');
    }
  }

  async #route(req: InboundRequest, attempt: Attempt): Promise<void> {
    const started = performance.now();
    const method = req.method;
    const source = req.sourceAddress;
    const trusted = this.#limits.isTrusted(source);
    if (method === 'OPTIONS') {
      // This proxy timing drachtio-server's queue: answered at once, neither admitted nor counted.
      if (this.#isProbe(req.callId)) {
        attempt.handedOff = true;
        this.#answer(req, PROBE_ANSWER);
        return;
      }
      const refusal = this.#admit(req, 'other', trusted, started);
      if (refusal) return this.#refuse(req, attempt, refusal, started);
      const ok = this.canRoute(started);
      this.#metrics.requests.count(method, ok ? 'options-ok' : 'options-unavailable');
      attempt.handedOff = true;
      this.#answer(req, optionsAnswer(ok, this.#settings.retryAfterSec));
      return;
    }
    const isInvite = method === 'INVITE';
    const refusal = this.#admit(req, isInvite ? 'invite' : 'other', trusted, started);
    if (refusal) return this.#refuse(req, attempt, refusal, started);

    const decision = this.#routes.decide(req);
    if (decision.kind !== 'route') return this.#unrouted(req, attempt, decision, started);
    const pools = decision.pools;

    if (isInvite) {
      const call = callIdentity(req.callId, req.fromTag());
      // An INVITE answering a challenge that this replica's drachtio-server holds goes to the
      // node that issued it, whatever the app says: count it there.
      const credentials = req.credentials();
      if (credentials) {
        let challenge = this.#challenges.take(credentials, started);
        const earlier = challenge ? undefined : this.#proxying.get(call);
        if (earlier) {
          const wound = new Promise<void>((resolve) => (earlier.waiters ??= []).push(resolve));
          await Promise.race([wound, delay(CHALLENGE_WAIT_MS)]);
          challenge = this.#challenges.take(credentials, performance.now());
        }
        if (challenge)
          return this.#retryAfterChallenge(req, attempt, call, challenge, decision.limits, started);
      }
      return this.#routeInvite(req, attempt, call, trusted, pools, decision.limits, started);
    }

    // REGISTER and SUBSCRIBE: a node of the first pool of the route that has one, by AOR.
    const t0 = performance.now();
    const aor = aorOf(req.toUri());
    let targets: ViewNode[] = [];
    for (const pool of pools) {
      targets = selectByAor(this.#poolNodes.get(pool, this.#view.nodes), aor, this.#settings.maxTargets);
      if (targets.length > 0) break;
    }
    this.#metrics.decisionSeconds.observe((performance.now() - t0) / 1000);
    if (targets.length === 0) return this.#noCapacity(req, attempt, started, []);
    await this.#proxy(req, attempt, targets, undefined, started);
  }

  /**
   * Admission, cheapest and most local first. Each source spends only its own budget before
   * anything shared is touched: the replica's CPS bucket sees only INVITEs that their source may
   * send and that are new calls for this cluster.
   */
  #admit(req: InboundRequest, kind: RequestClass, trusted: boolean, now: number): Refusal | undefined {
    if (this.#draining) return Refusal.ShuttingDown;
    if (!this.#acl.allows(req.sourceAddress)) return Refusal.Forbidden;
    if (!this.#limits.take(kind, req.sourceAddress, trusted, now)) return Refusal.RateLimited;
    if (kind !== 'invite') return undefined;
    if (req.toTag() !== undefined) return Refusal.InDialog;
    if (
      this.#settings.fromNodes === 'reject' &&
      this.#view.nodeAt(req.sourceAddress, req.sourcePort, req.protocol) !== undefined
    ) {
      return Refusal.Loop;
    }
    // fslb's own headers tell a node's monitor which limit counters and which advance slot a
    // call holds; drachtio-server appends the proxy's copy after any the caller sent, so a
    // caller's copy could mislead it.
    if (
      (req.header(LIMITS_HEADER) !== undefined || req.header(SLOT_HEADER) !== undefined) &&
      this.#view.nodeAt(req.sourceAddress, req.sourcePort, req.protocol) === undefined
    ) {
      return Refusal.OwnHeader;
    }
    // Before the replica's CPS budget: a shed call is never proxied, so it spends no token.
    if (this.#shed()) return Refusal.Backlog;
    if (!this.#cps.take(now)) return Refusal.Overloaded;
    return undefined;
  }

  async #routeInvite(
    req: InboundRequest,
    attempt: Attempt,
    call: string,
    trusted: boolean,
    pools: readonly string[],
    limits: readonly LimitUse[],
    started: number,
  ): Promise<void> {
    const s = this.#settings;
    const affinity =
      s.affinityFrom === 'any' || trusted ? req.header(s.affinityHeader) || undefined : undefined;
    const t0 = performance.now();
    const candidates = this.#choose(affinity, pools);
    this.#metrics.decisionSeconds.observe((performance.now() - t0) / 1000);
    if (candidates.nodes.length === 0) {
      for (const pool of pools) this.#metrics.poolCalls.count(pool, 'full');
      return this.#noCapacity(req, attempt, started, []);
    }

    let targets: readonly ViewNode[];
    if (s.reservations) {
      // Affinity and round robin keep their own order; least-loaded lets Redis pick by its counts.
      const inOrder = affinity !== undefined || s.balance === 'round-robin';
      let r = this.#accounting.reserve(call, candidates.nodes, {
        inOrder,
        groups: candidates.groups,
        limits,
      });
      // An advance slot is taken at once: no await, so the INVITE goes out in this turn.
      if (r instanceof Promise) r = await r;
      if (r.kind === 'over-limit') return this.#overLimit(req, attempt, r.use, r.what, started);
      if (r.kind === 'full') {
        for (const pool of pools) this.#metrics.poolCalls.count(pool, 'full');
        return this.#noCapacity(
          req,
          attempt,
          started,
          candidates.nodes.map((n) => n.id),
          'full',
        );
      }
      attempt.slots = r.slots;
      targets = r.targets;
    } else {
      // Without reservations the view alone decides: failover targets stay in the first pool.
      const first = candidates.groups[0];
      targets = candidates.nodes.filter((_, i) => candidates.groups[i] === first).slice(0, s.maxTargets);
    }
    const pool = targets[0] ? this.#routes.poolOf(targets[0].id) : undefined;
    if (pool !== undefined) {
      this.#metrics.poolCalls.count(pool, pool === pools[0] ? 'reserved' : 'spilled');
    }
    await this.#proxy(req, attempt, targets, call, started, undefined, limits);
  }

  /**
   * The retry of a challenged INVITE: drachtio-server sends it to the challenger alone, so its
   * slot is taken there, in place of the one the first attempt kept (the script ends an earlier
   * slot of the same call first, so a node that had room for the first attempt has room for its
   * retry). When the challenger can no longer take it (gone, down, drained, or full because the
   * kept slot lapsed), the caller gets 503 with Retry-After, as for any cluster without room.
   */
  async #retryAfterChallenge(
    req: InboundRequest,
    attempt: Attempt,
    call: string,
    challenge: Challenge,
    limits: readonly LimitUse[],
    started: number,
  ): Promise<void> {
    const kept = challenge.slots;
    attempt.slots = kept;
    const node = this.#view.get(challenge.nodeId);
    const tried = [challenge.nodeId];
    if (!node?.eligible) return this.#noCapacity(req, attempt, started, tried, undefined, challenge.nodeId);
    if (!this.#settings.reservations) {
      return this.#proxy(req, attempt, [node], call, started, challenge.nodeId, limits);
    }
    const r = await this.#accounting.reserve(call, [node], {
      inOrder: true,
      failovers: 0,
      retry: true,
      limits,
    });
    // The kept slot is ended by the script when the retry is the same call in Redis; otherwise
    // (another From tag, or either taken locally) it is handed back here.
    const carried =
      kept?.mode === SlotMode.Redis &&
      kept.call === call &&
      r.kind === 'reserved' &&
      r.slots.mode === SlotMode.Redis;
    if (kept && !carried) this.#accounting.release(kept);
    attempt.slots = undefined;
    if (r.kind === 'over-limit') return this.#overLimit(req, attempt, r.use, r.what, started);
    if (r.kind === 'full') return this.#noCapacity(req, attempt, started, tried, 'full', challenge.nodeId);
    attempt.slots = r.slots;
    await this.#proxy(req, attempt, [node], call, started, challenge.nodeId, limits);
  }

  /**
   * Candidates pool by pool, in the route's order, each pool's own selected the usual way. A few
   * more than targets per pool, so that a node found full in Redis is replaced in the same round
   * trip; at most 16 in all.
   */
  #choose(affinity: string | undefined, pools: readonly string[]): Candidates {
    const all = this.#view.nodes;
    const opts = { maxTargets: Math.min(16, this.#settings.maxTargets * 2), random: this.#random };
    const out: Candidates = { nodes: [], groups: [] };
    let group = 0;
    for (const pool of pools) {
      if (out.nodes.length >= 16) break;
      const nodes = this.#poolNodes.get(pool, all);
      let picked: ViewNode[];
      if (affinity) picked = selectWithAffinity(nodes, affinity, opts);
      else if (this.#settings.balance === 'round-robin')
        picked = selectRoundRobin(nodes, this.#turn, opts.maxTargets);
      else picked = selectLeastLoaded(nodes, opts);
      if (picked.length === 0) continue;
      group++;
      for (const n of picked.slice(0, 16 - out.nodes.length)) {
        out.nodes.push(n);
        out.groups.push(group);
      }
    }
    this.#turn++;
    return out;
  }

  async #proxy(
    req: InboundRequest,
    attempt: Attempt,
    targets: readonly ViewNode[],
    call: string | undefined,
    started: number,
    retryOf?: string,
    limits: readonly LimitUse[] = [],
  ): Promise<void> {
    if (call === undefined) return this.#forward(req, attempt, targets, call, started, retryOf, limits);
    // No promise per call: a retry that must wait adds itself to `waiters`, which is rare.
    const mine: { waiters: (() => void)[] | undefined } = { waiters: undefined };
    this.#proxying.set(call, mine);
    try {
      await this.#forward(req, attempt, targets, call, started, retryOf, limits);
    } finally {
      if (this.#proxying.get(call) === mine) this.#proxying.delete(call);
      for (const wake of mine.waiters ?? []) wake();
    }
  }

  async #forward(
    req: InboundRequest,
    attempt: Attempt,
    targets: readonly ViewNode[],
    call: string | undefined,
    started: number,
    retryOf: string | undefined,
    limits: readonly LimitUse[],
  ): Promise<void> {
    const s = this.#settings;
    const slots = attempt.slots;
    const proxied = { targets, accounting: slots?.mode, retryOf };
    // The caller's CANCEL reached srf while the reservation was under way: drachtio-server has
    // answered it (and the INVITE with 487), and would refuse the proxy. The slot ends now.
    if (req.canceled || this.#draining) {
      this.#handBack(attempt);
      attempt.handedOff = true;
      if (req.canceled) return this.#finish(req, forwarded(proxied, 'cancelled', 487), started);
      this.#answer(req, refusalAnswer(Refusal.ShuttingDown, s.retryAfterSec));
      return this.#finish(req, forwarded(proxied, Refusal.ShuttingDown, 503), started);
    }
    // srf's promise never settles if drachtio's socket drops: the proxy keeps its own clock, and
    // `abandonInFlight` gives up on every request at once. One promise per call for all three.
    let result: ProxyResult | undefined;
    let failure: string | undefined;
    let refusedBy: unknown;
    let done: (why: string) => void = noop;
    const headers: Record<string, string> | undefined =
      limits.length > 0
        ? { [LIMITS_HEADER]: limits.map((u) => u.entry).join(' ') }
        : slots?.slot !== undefined
          ? { [SLOT_HEADER]: slots.slot }
          : undefined;
    const limitMs = s.provisionalTimeoutMs * targets.length + s.finalTimeoutMs + 2000;
    attempt.handedOff = true;
    const r = await new Promise<ProxyResult | string>((resolve) => {
      done = resolve;
      this.#inFlight.set(done, performance.now() + limitMs);
      if (!this.#expiry) {
        this.#expiry = setInterval(() => this.#expire(), EXPIRY_SWEEP_MS);
        this.#expiry.unref();
      }
      const refused = (err: unknown): void => {
        // srf rejects with drachtio-server's NOK reason, a plain string.
        refusedBy = err;
        resolve('error');
      };
      try {
        req
          .proxy({
            destinations: targets.map((n) => n.destination),
            recordRoute: s.recordRoute,
            provisionalTimeout: this.#timeouts.provisional,
            finalTimeout: this.#timeouts.final,
            // The node's monitor learns from FreeSWITCH which limit counters, or which advance
            // slot, the call holds.
            headers,
          })
          .then(resolve, refused);
      } catch (err) {
        refused(err);
      }
    });
    this.#inFlight.delete(done);
    if (this.#isDraining() && this.#inFlight.size === 0) this.#idle?.();
    if (typeof r === 'string') failure = r;
    else result = r;
    if (result) {
      for (const resp of result.responses) {
        if (resp.status >= 300) this.#metrics.targetFailures.inc({ status: String(resp.status) });
      }
    }

    // A challenge: drachtio-server stopped at the node that challenged and will send the retry
    // there alone. The slot stays on that node for the retry (see ChallengeMemo).
    if (result && !result.connected && result.challenge && call !== undefined) {
      const challenger = challengerOf(result, targets);
      if (slots && slots.node !== challenger) this.#handBack(attempt);
      if (challenger) {
        this.#challenges.remember(result.challenge, {
          nodeId: challenger.id,
          call,
          slots: attempt.slots,
          expiresAt: performance.now() + CHALLENGE_MEMORY_MS,
        });
        attempt.slots = undefined;
      }
      this.#handBack(attempt);
      const outcome = forwarded(proxied, 'challenged', result.finalStatus ?? 0, challenger?.id);
      return this.#finish(req, outcome, started);
    }

    // Connected: the answering node's monitor settles every slot of the call (they are listed
    // under the call's key) when FreeSWITCH counts it; releasing here could uncount the live call
    // for the few ms until then. Not connected: no node holds the call, so every slot ends now.
    if (slots && result?.connected) {
      this.#accounting.connected(slots);
      attempt.slots = undefined;
    } else {
      this.#handBack(attempt);
    }
    // The caller may have cancelled while drachtio-server was proxying (it re-reads the flag).
    const cancelled = wasCancelled(req);
    if (failure === 'error' && !cancelled) {
      this.#log.warn(
        { callId: req.callId, err: typeof refusedBy === 'string' ? refusedBy : String(refusedBy) },
        'drachtio-server refused to proxy',
      );
    }
    // Only the outcome line names the answering node, and a connected call has one only with
    // log.calls all: its Contact is not parsed otherwise.
    const answeredBy =
      result?.connected && s.callLog === 'all' ? this.#answeredBy(result, targets) : undefined;
    const outcome = forwarded(
      proxied,
      cancelled ? 'cancelled' : (failure ?? (result?.connected ? 'connected' : 'failed')),
      result?.finalStatus ?? (cancelled ? 487 : 0),
      undefined,
      answeredBy?.id,
    );
    this.#finish(req, outcome, started);
  }

  #isDraining(): boolean {
    return this.#draining;
  }

  /** Ends the slot the attempt holds, if any. */
  #handBack(attempt: Attempt): void {
    if (attempt.slots) this.#accounting.release(attempt.slots);
    attempt.slots = undefined;
  }

  /**
   * The target that answered, for the outcome line: the node whose address is the final 2xx's
   * Contact. (srf groups per-target responses by address only, so their ports cannot be trusted.)
   */
  #answeredBy(result: ProxyResult, targets: readonly ViewNode[]): ViewNode | undefined {
    if (!result.contact) return undefined;
    const key = hostPortOf(result.contact);
    return targets.find((n) => n.hostPort === key);
  }

  /** A request refused at admission: answered, counted by reason, logged sampled. */
  #refuse(req: InboundRequest, attempt: Attempt, refusal: Refusal, now: number): void {
    attempt.handedOff = true;
    const a = refusalAnswer(refusal, this.#settings.retryAfterSec);
    this.#answer(req, a);
    this.#metrics.requests.count(req.method, refusal);
    this.#metrics.refusals.inc({ reason: refusal });
    const text = REFUSAL_TEXT[refusal];
    if (text === undefined) return;
    const node =
      refusal === Refusal.Loop
        ? this.#view.nodeAt(req.sourceAddress, req.sourcePort, req.protocol)
        : undefined;
    this.#refusals.note(
      refusal,
      req.sourceAddress,
      text,
      {
        method: req.method,
        callId: req.callId,
        port: req.sourcePort,
        status: a.status,
        ...(node ? { nodeId: node.id } : {}),
      },
      now,
    );
  }

  /** The routing rules answered the request themselves: a reject route, or no route matched. */
  #unrouted(
    req: InboundRequest,
    attempt: Attempt,
    d: { kind: 'reject'; route: string; status: number; reason: string } | { kind: 'none' },
    started: number,
  ): void {
    attempt.handedOff = true;
    if (d.kind === 'reject') {
      this.#metrics.routeRefusals.inc({ route: d.route });
      this.#answer(req, { status: d.status, reason: d.reason, headers: {} });
      return this.#finish(req, { outcome: 'rejected', status: d.status, tried: [], route: d.route }, started);
    }
    this.#metrics.routeRefusals.inc({ route: 'none' });
    const a = refusalAnswer(Refusal.NoRoute, this.#settings.retryAfterSec);
    this.#answer(req, a);
    this.#finish(req, { outcome: Refusal.NoRoute, status: a.status, tried: [] }, started);
  }

  /** The call is over a cluster-wide limit (or one that cannot be counted now): nothing is held. */
  #overLimit(
    req: InboundRequest,
    attempt: Attempt,
    use: LimitUse,
    what: 'maxCalls' | 'maxCps' | 'unavailable',
    started: number,
  ): void {
    this.#handBack(attempt);
    attempt.handedOff = true;
    this.#metrics.limitRefusals.inc({ limit: use.limit.id, kind: what });
    const a = limitAnswer(use.limit, what, this.#settings.retryAfterSec);
    this.#answer(req, a);
    this.#finish(req, { outcome: 'over-limit', status: a.status, tried: [], limit: use.entry }, started);
  }

  /** No node can take the call: 503 with Retry-After, and the outcome line. */
  #noCapacity(
    req: InboundRequest,
    attempt: Attempt,
    started: number,
    tried: string[],
    accounting?: string,
    retryOf?: string,
  ): void {
    this.#handBack(attempt);
    attempt.handedOff = true;
    const a = refusalAnswer(Refusal.NoCapacity, this.#settings.retryAfterSec);
    this.#answer(req, a);
    this.#finish(
      req,
      {
        outcome: Refusal.NoCapacity,
        status: a.status,
        tried,
        ...(accounting ? { accounting } : {}),
        ...(retryOf ? { node: retryOf, retryOf } : {}),
      },
      started,
    );
  }

  #finish(req: InboundRequest, o: Outcome, started: number): void {
    this.#metrics.requests.count(req.method, o.outcome);
    // A connected call is the common case and is counted above. A line for each would be the
    // largest CPU cost of its routing, and a stream of logs that the nodes' CDRs already hold.
    const log = this.#settings.callLog;
    if (log === 'none' || (log === 'failed' && o.outcome === 'connected')) return;
    // One shape for every line (a field left undefined is not written): spreading `o` here cost
    // every call several µs.
    this.#callLog.info(
      {
        callId: req.callId,
        method: req.method,
        source: `${req.sourceAddress}:${req.sourcePort}`,
        tried: o.tried,
        node: o.node,
        accounting: o.accounting,
        retryOf: o.retryOf,
        route: o.route,
        limit: o.limit,
        outcome: o.outcome,
        status: o.status,
        answeredBy: o.answeredBy,
        ms: Math.round((performance.now() - started) * 10) / 10,
      },
      'request routed',
    );
  }

  #answer(req: InboundRequest, a: SipAnswer): void {
    try {
      req.respond(a.status, a.reason, a.headers);
    } catch (err) {
      this.#log.warn({ err, callId: req.callId }, 'could not send the answer');
    }
  }
}

/**
 * The target that issued a challenge. drachtio-server stops at a 401/407 and tries no target
 * after it, so the challenger is the last target tried: the k-th target that answered, where k
 * counts the final responses (silent targets leave none, and come before it). Among the targets
 * from that position on, it is the first at the address of the challenge's response. srf gives
 * each response's address but not its port, so two targets on one address and a silent one
 * between them could be told apart only by a guess; this takes the earliest.
 */
export function challengerOf(result: ProxyResult, targets: readonly ViewNode[]): ViewNode | undefined {
  const last = result.responses[result.responses.length - 1];
  if (!last) return undefined;
  const host = last.address.toLowerCase().replace(/^\[|\]$/g, '');
  for (let i = Math.max(0, result.responses.length - 1); i < targets.length; i++) {
    const t = targets[i];
    if (t && t.hostPort.slice(0, t.hostPort.lastIndexOf(':')) === host) return t;
  }
  return undefined;
}

/**
 * The outcome of a request handed to drachtio-server's proxy. `node` is the first target unless
 * given (the challenger). Every forwarded outcome has this one object shape.
 */
function forwarded(
  p: { targets: readonly ViewNode[]; accounting: string | undefined; retryOf: string | undefined },
  outcome: string,
  status: number,
  node = p.targets[0]?.id,
  answeredBy?: string,
): Outcome {
  return {
    outcome,
    status,
    node,
    answeredBy,
    tried: p.targets.map((n) => n.id),
    accounting: p.accounting,
    retryOf: p.retryOf,
    route: undefined,
    limit: undefined,
  };
}

function noop(): void {}

/** Reads the request's CANCEL flag afresh: srf sets it while the router awaits. */
function wasCancelled(req: InboundRequest): boolean {
  return req.canceled;
}

/** The address of record of a To URI: scheme, user and host, without parameters or port case. */
export function aorOf(uri: string): string {
  const m = /^(sips?):(?:([^@;?]*)@)?([^;?>]+)/i.exec(uri.trim());
  if (!m) return uri.trim().toLowerCase();
  return `${(m[1] ?? '').toLowerCase()}:${m[2] ?? ''}@${(m[3] ?? '').toLowerCase()}`;
}
