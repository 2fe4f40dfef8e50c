const durationRe = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h)?$/;
const unitMs = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 } as const;

/**
 * Reads a duration written as milliseconds (`1500`) or with a unit (`500ms`, `2s`, `1.5m`, `1h`).
 * Returns undefined for anything else.
 */
export function parseDuration(value: string | number): number | undefined {
  if (typeof value === 'number') return Number.isFinite(value) && value >= 0 ? value : undefined;
  const m = durationRe.exec(value.trim());
  if (!m) return undefined;
  const unit = (m[2] ?? 'ms') as keyof typeof unitMs;
  return Math.round(Number(m[1]) * unitMs[unit]);
}
