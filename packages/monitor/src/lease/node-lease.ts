import Redlock, { ExecutionError, ResourceLockedError, type Lock } from 'redlock';
import type { Logger, Redis } from '@fslb/shared';

/**
 * The one adapter around redlock: a lease per node, held by one monitor at a time. The lease's
 * random token is what `write-node` checks before any write (fencing), so a monitor that lost its
 * lease cannot overwrite the new owner even if it does not know yet that it lost.
 */
export class LeaseClient {
  readonly #redlock: Redlock;

  constructor(redis: Redis, log: Logger) {
    // One Redis: redlock's quorum is that one server. No retries: a claim that fails is
    // tried again on the next claim tick, after the others had their chance.
    this.#redlock = new Redlock([redis], { retryCount: 0, driftFactor: 0.01, retryJitter: 0 });
    this.#redlock.on('error', (err: unknown) => {
      if (err instanceof ResourceLockedError) return;
      log.debug({ err }, 'redlock client error');
    });
  }

  /** Takes the lease when free; resolves undefined when someone else holds it. */
  async acquire(key: string, ttlMs: number): Promise<NodeLease | undefined> {
    try {
      return new NodeLease(await this.#redlock.acquire([key], ttlMs));
    } catch (err) {
      if (err instanceof ExecutionError || err instanceof ResourceLockedError) return undefined;
      throw err;
    }
  }
}

export class NodeLease {
  #lock: Lock;

  constructor(lock: Lock) {
    this.#lock = lock;
  }

  /** The token written under the lease key; the fencing scripts compare against it. */
  get token(): string {
    return this.#lock.value;
  }

  /** Epoch ms after which the lease must be presumed lost, whatever Redis says. */
  get expiresAt(): number {
    return this.#lock.expiration;
  }

  /** Extends the lease; resolves false when it was lost (expired or taken). */
  async extend(ttlMs: number): Promise<boolean> {
    try {
      this.#lock = await this.#lock.extend(ttlMs);
      return true;
    } catch (err) {
      if (err instanceof ExecutionError || err instanceof ResourceLockedError) return false;
      throw err;
    }
  }

  /** Gives the lease up (compare-and-delete); errors are swallowed since it expires anyway. */
  async release(): Promise<void> {
    try {
      await this.#lock.release();
    } catch {
      // Expired or taken already: nothing left to release.
    }
  }
}
