import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { configSchema, parseConfig } from '@fslb/shared';

/**
 * The README's configuration reference against the schema: every key the schema accepts is
 * documented, every documented key exists, and each plain default in the table is the value a
 * minimal file really gets.
 */
const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');

interface Def {
  type: string;
  innerType?: unknown;
  in?: unknown;
  element?: unknown;
  shape?: Record<string, unknown>;
}
const defOf = (s: unknown): Def => (s as { _zod: { def: Def } })._zod.def;

/** Every path the schema accepts, `[]` for array elements; unions and enums are leaves. */
function schemaPaths(s: unknown, path: string, out: Set<string>): Set<string> {
  const d = defOf(s);
  switch (d.type) {
    case 'optional':
    case 'default':
    case 'prefault':
    case 'nullable':
      return schemaPaths(d.innerType, path, out);
    case 'pipe':
      return schemaPaths(d.in, path, out);
    case 'object':
      if (path !== '') out.add(path);
      for (const [k, v] of Object.entries(d.shape ?? {}))
        schemaPaths(v, path === '' ? k : `${path}.${k}`, out);
      return out;
    case 'array':
      out.add(path);
      if (defOf(d.element).type === 'object') schemaPaths(d.element, `${path}[]`, out);
      return out;
    default:
      out.add(path);
      return out;
  }
}

/** Rows of the reference table: the keys of the first cell (`.port` is relative) and the default cell. */
function tableRows(): { keys: string[]; defaults: string }[] {
  const start = readme.indexOf('## Configuration');
  const section = readme.slice(start, readme.indexOf('\n## ', start + 10));
  const rows: { keys: string[]; defaults: string }[] = [];
  for (const line of section.split('\n')) {
    const cells = line.split('|').map((c) => c.trim());
    if (cells.length < 4 || !cells[1]?.startsWith('`')) continue;
    const keys: string[] = [];
    for (const m of cells[1].matchAll(/`([^`]+)`/g)) {
      const k = m[1] ?? '';
      const prev = keys.at(-1);
      keys.push(k.startsWith('.') && prev ? prev.slice(0, prev.lastIndexOf('.')) + k : k);
    }
    rows.push({ keys, defaults: cells[2] ?? '' });
  }
  return rows;
}

const minimal = parseConfig(
  { nodes: [{ id: 'fs1', sip: '127.0.0.1:5080', esl: { host: 'h', password: 'p' } }] },
  {},
);

function valueAt(path: string): unknown {
  let v: unknown = minimal;
  for (const part of path.replace('[]', '.0').split('.')) {
    if (typeof v !== 'object' || v === null) return undefined;
    v = (v as Record<string, unknown>)[part];
  }
  return v;
}

describe('README configuration reference', () => {
  const paths = schemaPaths(configSchema, '', new Set());
  const rows = tableRows();
  const documented = new Set(rows.flatMap((r) => r.keys));

  it('documents every key of the schema', () => {
    assert.ok(rows.length > 30, `found the table (${rows.length} rows)`);
    // A key is covered when it or an enclosing key (`redis.sentinels` covers its host and port) is a row.
    const covered = (p: string): boolean => {
      for (let q = p; q !== ''; q = q.replace(/(\.[^.[\]]+|\[\])$/, '')) if (documented.has(q)) return true;
      return false;
    };
    const objects = new Set(
      [...paths].filter((p) => [...paths].some((q) => q.startsWith(`${p}.`) || q.startsWith(`${p}[].`))),
    );
    const missing = [...paths].filter((p) => !objects.has(p) && !covered(p));
    assert.deepEqual(missing, []);
  });

  it('documents no key the schema lacks', () => {
    const unknown = [...documented].filter((k) => !paths.has(k));
    assert.deepEqual(unknown, []);
  });

  it('gives the defaults a minimal file really gets', () => {
    let checked = 0;
    for (const r of rows) {
      const cells = r.defaults.split(/,\s*/).map((c) => c.trim());
      if (cells.length !== r.keys.length) continue;
      r.keys.forEach((k, i) => {
        // Literal defaults are numbers, booleans or code; words (`none`, `hostname-pid`) describe.
        const cell = cells[i] ?? '';
        if (!/^(`[^`]+`|-?\d+(\.\d+)?|true|false)$/.test(cell)) return;
        const want = cell.replace(/`/g, '');
        const got = valueAt(k) as string | number | boolean | object | undefined;
        if (got === undefined || typeof got === 'object') return;
        assert.equal(String(got), want, `${k}: README says ${want}, the schema gives ${String(got)}`);
        checked++;
      });
    }
    assert.ok(checked >= 30, `checked ${checked} defaults`);
  });
});
