import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { ClusterKeys } from '@fslb/shared';

const root = new URL('..', import.meta.url);
const readme = readFileSync(new URL('README.md', root), 'utf8');
const module = readFileSync(new URL('packages/shared/src/cluster-keys.ts', root), 'utf8');

/** Every key the schema module can spell, with `<id>` for parameters. */
function schemaKeys(): string[] {
  const k = new ClusterKeys();
  const proto = ClusterKeys.prototype as unknown as Record<string, unknown>;
  const names = Object.getOwnPropertyNames(ClusterKeys.prototype).filter(
    // `pattern` is a SCAN glob, `eventsPublish` the scripts' publish command and `shard` another
    // shard's keys: none is a key.
    (n) => n !== 'constructor' && n !== 'pattern' && n !== 'eventsPublish' && n !== 'shard',
  );
  return names
    .map((n) => {
      const d = Object.getOwnPropertyDescriptor(ClusterKeys.prototype, n);
      if (d?.get) return d.get.call(k) as string;
      return (proto[n] as (id: string) => string).call(k, '<id>');
    })
    .sort();
}

/** Rows `| key | type | ...` of the first table after a heading, key and type only. */
function readmeRows(): Map<string, string> {
  const section = readme.slice(readme.indexOf('## Redis keys'));
  const rows = new Map<string, string>();
  for (const m of section.matchAll(/^\| `(fslb:[^`]+)` \| ([^|]+) \|/gm)) {
    rows.set(m[1] ?? '', (m[2] ?? '').trim());
  }
  return rows;
}

/** Rows of the header table in cluster-keys.ts, key and type, continuation lines ignored. */
function moduleRows(): Map<string, string> {
  const rows = new Map<string, string>();
  for (const m of module.matchAll(/^ \* \| (fslb:\S+)\s+\| (\S+)/gm)) rows.set(m[1] ?? '', m[2] ?? '');
  return rows;
}

describe('README key table', () => {
  it('lists exactly the keys the key module spells, with the same types as its header', () => {
    const keys = schemaKeys();
    const fromReadme = readmeRows();
    const fromModule = moduleRows();
    assert.deepEqual([...fromReadme.keys()].sort(), keys);
    assert.deepEqual([...fromModule.keys()].sort(), keys);
    for (const key of keys) {
      assert.ok(
        fromReadme.get(key)?.startsWith(fromModule.get(key) ?? '?'),
        `${key}: README says ${fromReadme.get(key)}, module says ${fromModule.get(key)}`,
      );
    }
  });
});
