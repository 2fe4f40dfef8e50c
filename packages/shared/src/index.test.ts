import assert from 'node:assert/strict';
import { test } from 'node:test';
import { placeholder } from '@fslb/shared';

test('resolves workspace sources', () => {
  assert.equal(placeholder, 'shared');
});
