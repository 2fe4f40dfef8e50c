/**
 * What every benchmark writes: bench/results/<name>.json (its flat figures at the top level, as
 * scripts/run-bench.mjs gathers them into latest.json, then its detail) and
 * bench/results/<name>.md (a short markdown summary that run-bench.mjs puts into summary.md).
 * A figure that could not be taken is null, with the reason in `notes[figure]`.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, release, totalmem } from 'node:os';

/** The machine a figure was taken on. */
export function machine(): { cpu: string; cores: number; ram_gib: number; kernel: string; node: string } {
  return {
    cpu: cpus()[0]?.model ?? 'unknown',
    cores: cpus().length,
    ram_gib: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    kernel: release(),
    node: process.version,
  };
}

export const round = (x: number, d = 1): number => Math.round(x * 10 ** d) / 10 ** d;

/** The p-quantile (0..1) of ascending `sorted` (nearest rank, lower). */
export function quantile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? NaN;
}

/** min, p50, p99, max and mean of `xs`, rounded to `d` decimals. */
export function summary(
  xs: readonly number[],
  d = 1,
): { n: number; min: number; p50: number; p99: number; max: number; mean: number } {
  const s = [...xs].sort((a, b) => a - b);
  return {
    n: s.length,
    min: round(s[0] ?? NaN, d),
    p50: round(quantile(s, 0.5), d),
    p99: round(quantile(s, 0.99), d),
    max: round(s[s.length - 1] ?? NaN, d),
    mean: round(s.reduce((a, b) => a + b, 0) / Math.max(1, s.length), d),
  };
}

/** Least-squares slope of y over x. */
export function slope(points: readonly { x: number; y: number }[]): number {
  const n = points.length;
  if (n < 2) return NaN;
  const mx = points.reduce((a, p) => a + p.x, 0) / n;
  const my = points.reduce((a, p) => a + p.y, 0) / n;
  let num = 0;
  let den = 0;
  for (const p of points) {
    num += (p.x - mx) * (p.y - my);
    den += (p.x - mx) ** 2;
  }
  return den === 0 ? NaN : num / den;
}

/** Writes results/<name>.json and results/<name>.md. */
export function writeBench(name: string, result: Record<string, unknown>, markdown: string): void {
  const dir = new URL('../results/', import.meta.url);
  mkdirSync(dir, { recursive: true });
  writeFileSync(new URL(`${name}.json`, dir), `${JSON.stringify(result, null, 2)}\n`);
  writeFileSync(new URL(`${name}.md`, dir), `${markdown.trim()}\n`);
}

/** A markdown table. */
export function table(
  header: readonly string[],
  rows: readonly (readonly (string | number | null)[])[],
): string {
  const cell = (v: string | number | null): string => (v === null ? '—' : String(v)).replace(/\|/g, '\\|');
  return [
    `| ${header.join(' | ')} |`,
    `|${header.map(() => '---').join('|')}|`,
    ...rows.map((r) => `| ${r.map(cell).join(' | ')} |`),
  ].join('\n');
}
