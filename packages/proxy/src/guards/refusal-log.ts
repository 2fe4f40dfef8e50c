import type { Logger } from '@fslb/shared';

export interface RefusalLogSettings {
  /** One line per source per window at most; the summary of what was held back follows it. */
  windowMs: number;
  /** Lines per window at most, whatever the number of sources (a scan of spoofed addresses). */
  maxLines: number;
  /** Sources remembered per window at most; past it, every refusal goes into the counts only. */
  maxSources: number;
}

export const DEFAULT_REFUSAL_LOG: Readonly<RefusalLogSettings> = {
  windowMs: 10_000,
  maxLines: 20,
  maxSources: 10_000,
};

/**
 * Logs refused requests sampled, so that a flood never becomes a log flood: the first refusal
 * of a source in a window gets a line, the rest of that window's refusals are only counted, and
 * when the window closes one summary line says how many were held back, by reason, and which
 * sources sent most. A window with nothing held back ends without a line.
 *
 * Time comes from the caller (monotonic ms); a timer closes a window that has counts to report,
 * so the summary comes even when the flood stops.
 */
export class RefusalLog {
  readonly #log: Logger;
  readonly #s: RefusalLogSettings;
  /** Refusals held back this window, per source (the logged one is not counted). */
  readonly #sources = new Map<string, number>();
  readonly #reasons = new Map<string, number>();
  #windowStart = -Infinity;
  #lines = 0;
  #held = 0;
  #timer: NodeJS.Timeout | undefined;

  constructor(log: Logger, settings: Partial<RefusalLogSettings> = {}) {
    this.#log = log;
    this.#s = { ...DEFAULT_REFUSAL_LOG, ...settings };
  }

  /**
   * One refused request. `message` and `fields` make its line when it is logged; `source` is
   * the address that the sampling is per (a node's address for loops).
   */
  note(reason: string, source: string, message: string, fields: Record<string, unknown>, now: number): void {
    if (now - this.#windowStart >= this.#s.windowMs) this.#close(now);
    const seen = this.#sources.get(source);
    if (seen === undefined && this.#lines < this.#s.maxLines && this.#sources.size < this.#s.maxSources) {
      this.#sources.set(source, 0);
      this.#lines++;
      this.#log.warn(
        { reason, source, ...fields, windowSec: this.#s.windowMs / 1000 },
        `${message} (one line per source per window)`,
      );
      return;
    }
    if (seen !== undefined) this.#sources.set(source, seen + 1);
    else if (this.#sources.size < this.#s.maxSources) this.#sources.set(source, 1);
    this.#reasons.set(reason, (this.#reasons.get(reason) ?? 0) + 1);
    this.#held++;
    if (!this.#timer) {
      const left = Math.max(1, this.#windowStart + this.#s.windowMs - now);
      this.#timer = setTimeout(() => {
        this.#timer = undefined;
        this.#close(performance.now());
      }, left);
      this.#timer.unref();
    }
  }

  close(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#close(performance.now());
  }

  #close(now: number): void {
    if (this.#held > 0) {
      const top = [...this.#sources]
        .filter(([, n]) => n > 0)
        .sort((a, b) => b[1] - a[1])
        .slice(0, 5)
        .map(([source, n]) => ({ source, n }));
      this.#log.warn(
        {
          suppressed: this.#held,
          reasons: Object.fromEntries(this.#reasons),
          sources: this.#sources.size,
          top,
          windowSec: this.#s.windowMs / 1000,
        },
        'refused requests not logged one by one in the last window',
      );
    }
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#sources.clear();
    this.#reasons.clear();
    this.#held = 0;
    this.#lines = 0;
    this.#windowStart = now;
  }
}
