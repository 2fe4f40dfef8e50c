/**
 * The one error base of fslb. `code` is a stable string that callers and logs can match on;
 * `cause` keeps the underlying error. Expected outcomes (a refused write, no eligible node)
 * are values or dedicated codes, never a thrown programmer error.
 */
export class FslbError extends Error {
  readonly code: string;

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'FslbError';
    this.code = code;
  }
}

/** One problem found in a configuration, with the path that holds it (`nodes.1.esl.port`). */
export interface ConfigIssue {
  path: string;
  message: string;
}

/** A configuration that failed to load or validate; `issues` lists every problem found. */
export class ConfigError extends FslbError {
  readonly issues: readonly ConfigIssue[];

  constructor(issues: readonly ConfigIssue[], options?: { cause?: unknown }) {
    super('CONFIG_INVALID', `invalid configuration:\n${formatIssues(issues)}`, options);
    this.name = 'ConfigError';
    this.issues = issues;
  }
}

export function formatIssues(issues: readonly ConfigIssue[]): string {
  return issues.map((i) => `  - ${i.path === '' ? '(root)' : i.path}: ${i.message}`).join('\n');
}
