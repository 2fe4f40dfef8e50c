/**
 * Plain-text tables for a terminal or a pipe. Colour is ANSI SGR, used only when the caller says
 * so (stdout is a TTY and NO_COLOR is not set); widths ignore the escape codes.
 */

export type Colour = 'green' | 'red' | 'yellow' | 'grey' | 'bold' | 'cyan';

const sgr: Record<Colour, [number, number]> = {
  green: [32, 39],
  red: [31, 39],
  yellow: [33, 39],
  cyan: [36, 39],
  grey: [90, 39],
  bold: [1, 22],
};

export interface Paint {
  (text: string, colour: Colour | undefined): string;
  readonly enabled: boolean;
}

export function painter(enabled: boolean): Paint {
  const p = (text: string, colour: Colour | undefined): string => {
    if (!enabled || colour === undefined || text === '') return text;
    const [on, off] = sgr[colour];
    return `\x1b[${on}m${text}\x1b[${off}m`;
  };
  return Object.assign(p, { enabled });
}

/** Whether to colour a stream: a TTY, NO_COLOR unset (https://no-color.org), or FORCE_COLOR set. */
export function wantsColour(
  stream: { isTTY?: boolean },
  env: Readonly<Record<string, string | undefined>>,
): boolean {
  if (env.NO_COLOR !== undefined && env.NO_COLOR !== '') return false;
  if (env.FORCE_COLOR !== undefined && env.FORCE_COLOR !== '' && env.FORCE_COLOR !== '0') return true;
  return stream.isTTY === true;
}

// eslint-disable-next-line no-control-regex
const ansi = /\x1b\[[0-9;]*m/g;
const visibleLength = (s: string): number => s.replace(ansi, '').length;

export interface Column {
  title: string;
  align?: 'left' | 'right';
}

/** Lays out rows under their titles, two spaces between columns, no trailing spaces. */
export function table(
  columns: readonly Column[],
  rows: readonly (readonly string[])[],
  paint: Paint,
): string {
  const widths = columns.map((c, i) =>
    Math.max(c.title.length, ...rows.map((r) => visibleLength(r[i] ?? ''))),
  );
  const line = (cells: readonly string[]): string =>
    cells
      .map((cell, i) => {
        const pad = ' '.repeat(Math.max(0, (widths[i] ?? 0) - visibleLength(cell)));
        return columns[i]?.align === 'right' ? pad + cell : cell + pad;
      })
      .join('  ')
      .trimEnd();
  return [paint(line(columns.map((c) => c.title)), 'bold'), ...rows.map(line)].join('\n');
}

/** `[####......]`: how full a node is, sessions and reservations together. */
export function loadBar(used: number, max: number, width = 10): string {
  if (max <= 0) return `[${'?'.repeat(width)}]`;
  const filled = Math.min(width, Math.round((width * used) / max));
  return `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}]`;
}

/** An age for people: 850ms, 4.2s, 3m12s, 2h05m, 3d4h. */
export function formatAge(ms: number | null): string {
  if (ms === null || !Number.isFinite(ms)) return '-';
  const v = Math.max(0, ms);
  if (v < 1000) return `${Math.round(v)}ms`;
  if (v < 10_000) return `${(v / 1000).toFixed(1)}s`;
  const s = Math.floor(v / 1000);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(s % 60).padStart(2, '0')}s`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h}h${String(m % 60).padStart(2, '0')}m`;
  return `${Math.floor(h / 24)}d${h % 24}h`;
}
