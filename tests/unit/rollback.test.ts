// lib/rollback/: the plan from verify's changes (the table as the truth), and its report, without a database.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { DynamoItem } from '../../lib/dynamodb/batch.ts';
import type { FixChange } from '../../lib/verify/fixPlan.ts';
import type { PostgresProject, PostgresToken } from '../../lib/verify/compare.ts';
import { changesRow, planRollback, type PlanContext, type RowChange } from '../../lib/rollback/plan.ts';
import { verifyMigration } from '../../lib/verify/run.ts';
import { formatChange, formatPlan } from '../../lib/rollback/report.ts';
import { nullableAttributes } from '../support/celloRows.ts';
import type { TokenValueAttribute } from '../../lib/cello/items.ts';

const PK = 'PROJECT#alpha';
const project: PostgresProject = { name: 'alpha', repository: null };
/** Every nullable token attribute NULL, as a row holds it (lib/cello's table: one added later too). */
const NULL_TOKEN_VALUES = Object.fromEntries(nullableAttributes('token').map((name) => [name, null])) as Record<TokenValueAttribute, null>;
const token = (id: string, createdAt: string, expiresAt: string | null = null): PostgresToken => ({
  ...NULL_TOKEN_VALUES,
  project: 'alpha',
  tokenId: id,
  created_at: createdAt,
  expires_at: expiresAt,
});
const item = (id: string, createdAt: string, expiresAt = ''): DynamoItem => ({
  pk: { S: PK },
  sk: { S: `TOKEN#${id}` },
  token_id: { S: id },
  created_at: { S: createdAt },
  expires_at: { S: expiresAt },
});
/** A change as verify's comparison gives it; only what it read matters to the rollback. */
const found = (sk: string, postgres?: PostgresToken, read?: DynamoItem): FixChange => ({
  kind: 'unfixable',
  pk: PK,
  sk,
  reason: '',
  found: { ...(postgres ? { postgres: { project, token: postgres } } : {}), ...(read ? { item: read } : {}) },
});

function context(overrides: Partial<PlanContext> = {}): PlanContext {
  return {
    projectRows: new Set(['alpha']),
    orphanProjects: new Set(),
    tokenItemsInTable: new Map([[PK, 1]]),
    includeOrphans: false,
    tokenProjects: new Map(),
    unencodable: { encoding: 'UTF8', characters: new Set() },
    columnLimits: new Map([['tokens', new Map([['token_id', 5]])]]),
    ...overrides,
  };
}

test('the table is the truth: an item PostgreSQL lacks is inserted, a row the table lacks deleted, decoded values compared', () => {
  const plan = planRollback(
    [
      found('TOKEN#new', undefined, item('new', '2031-01-01T00:00:00.000001000Z')),
      found('TOKEN#old', token('old', '2022-01-01 00:00:00+00')),
      // The same instant in a legacy form, and "" for NULL: no change.
      found('TOKEN#same', token('same', '2022-01-01 00:00:00.5+00'), item('same', '2022-01-01 05:30:00.5+05:30')),
      found('TOKEN#diff', token('diff', '2022-01-01 00:00:00+00', '2030-01-01 00:00:00+00'), item('diff', '2022-01-01T00:00:00.000000000Z')),
    ],
    context(),
  );
  assert.deepEqual(plan.problems, []);
  assert.deepEqual(plan.changes.map(formatChange), [
    'insert token new of project alpha',
    'delete token old of project alpha',
    'update token diff of project alpha: expires_at: 2030-01-01T00:00:00.000000000Z → NULL',
  ]);
  const inserted = plan.changes[0] as Extract<RowChange, { kind: 'insert' }>;
  assert.deepEqual(inserted.row, { ...NULL_TOKEN_VALUES, token_id: 'new', created_at: '2031-01-01 00:00:00.000001+00', project: 'alpha' });
});

test('an item PostgreSQL cannot hold is a problem, not a change: digits past the microsecond, a value too long, an id unlike its key', () => {
  const plan = planRollback(
    [
      found('TOKEN#nano', undefined, item('nano', '2031-01-01T00:00:00.000000001Z')),
      found('TOKEN#toolong', undefined, item('toolong', '2031-01-01T00:00:00Z')),
      found('TOKEN#a', undefined, { ...item('a', '2031-01-01T00:00:00Z'), token_id: { S: 'b' } }),
    ],
    context(),
  );
  assert.deepEqual(plan.changes, []);
  assert.deepEqual(
    plan.problems.map(({ sk, reason }) => `${sk}: ${reason.replace(/ \(expected e\.g\. [^)]*\)/, '')}`),
    [
      'TOKEN#nano: created_at "2031-01-01T00:00:00.000000001Z" is not a timestamp: PostgreSQL keeps microseconds, and the digits past them are not zero',
      "TOKEN#toolong: token_id is 7 characters long; PostgreSQL's column holds 5 at most",
      'TOKEN#a: token_id differs from the id in the sort key',
    ],
  );
});

test('a project whose METADATA item is gone is deleted after its tokens, unless the table still holds tokens of it', () => {
  const metadataGone: FixChange = { kind: 'put', pk: PK, sk: 'METADATA', target: {}, found: { postgres: { project } } };
  const gone = planRollback(
    [metadataGone, found('TOKEN#t', token('t', '2022-01-01 00:00:00+00'))],
    context({ tokenItemsInTable: new Map([[PK, 0]]) }),
  );
  assert.deepEqual(gone.changes.map(formatChange), ['delete token t of project alpha', 'delete project alpha']);
  const kept = planRollback([metadataGone], context());
  assert.match(kept.problems[0]!.reason, /^the table holds a token of this project but no METADATA item/);
  assert.deepEqual(planRollback([metadataGone], context({ includeOrphans: true })).changes, []);
});

test('the plan prints at most 20 lines per project, then how many more', () => {
  const changes = Array.from({ length: 25 }, (_, index) => found(`TOKEN#t${index}`, undefined, item(`t${index}`, '2031-01-01T00:00:00Z')));
  const text = formatPlan(planRollback(changes, context({ columnLimits: new Map() })));
  const lines = text.trimEnd().split('\n');
  assert.equal(lines[0], 'Rollback plan (the table is the truth; 25 rows of PostgreSQL to change):');
  assert.equal(lines.length, 22);
  assert.equal(lines.at(-1), '  ... and 5 more rows of project alpha');
});

test('the plan prints 200 lines at most in all, then how many more rows of how many more projects', () => {
  const changes = Array.from({ length: 300 }, (_, index) => ({
    ...found(`TOKEN#t${index}`, undefined, { ...item(`t${index}`, '2031-01-01T00:00:00Z'), pk: { S: `PROJECT#p${String(index).padStart(3, '0')}` } }),
    pk: `PROJECT#p${String(index).padStart(3, '0')}`,
  }));
  const text = formatPlan(planRollback(changes, context({ projectRows: new Set(), includeOrphans: true, columnLimits: new Map() })));
  const lines = text.trimEnd().split('\n');
  // Each project is new: its row (made by --include-orphans, no METADATA item) and its token.
  assert.equal(lines.length, 1 + 200 + 1);
  assert.equal(lines.at(-1), '  ... and 400 more rows of 200 more projects');
});

test('one token id inserted under two projects is a problem: PostgreSQL keys a token by its id alone', () => {
  const other = { ...item('twice', '2031-01-01T00:00:00Z'), pk: { S: 'PROJECT#beta' } };
  const plan = planRollback(
    [found('TOKEN#twice', undefined, item('twice', '2031-01-01T00:00:00Z')), { ...found('TOKEN#twice', undefined, other), pk: 'PROJECT#beta' }],
    context({ projectRows: new Set(['alpha', 'beta']), columnLimits: new Map() }),
  );
  assert.deepEqual(plan.problems, [
    {
      pk: 'PROJECT#beta',
      sk: 'TOKEN#twice',
      reason: 'the table holds this token id under project "alpha" too, and PostgreSQL keys a token by its id alone',
    },
  ]);
});

test('a token id inserted while PostgreSQL keeps it under another project is a problem; one the plan deletes there is a move', () => {
  const betaToken = { ...token('moved', '2022-01-01 00:00:00+00'), project: 'beta' };
  const deleteInBeta: FixChange = { ...found('TOKEN#moved', betaToken), pk: 'PROJECT#beta' };
  const insertInAlpha = found('TOKEN#moved', undefined, item('moved', '2022-01-01T00:00:00Z'));
  const tokenProjects = new Map([['moved', 'beta']]);
  const kept = planRollback([insertInAlpha], context({ tokenProjects, columnLimits: new Map() }));
  assert.deepEqual(
    kept.problems.map((problem) => problem.reason),
    [
      'PostgreSQL holds this token id under project "beta" and keeps it there (the table holds it there too, or it is not compared), and PostgreSQL keys a token by its id alone',
    ],
  );
  const moved = planRollback(
    [insertInAlpha, deleteInBeta],
    context({ tokenProjects, projectRows: new Set(['alpha', 'beta']), columnLimits: new Map() }),
  );
  assert.deepEqual(moved.problems, []);
  assert.deepEqual(moved.changes.map(formatChange), ['insert token moved of project alpha', 'delete token moved of project beta']);
});

test('items that differ from PostgreSQL in form only (legacy timestamps) do not count toward the rollback’s limit of changes', async () => {
  const legacy = (id: string) => item(id, '2022-01-01 05:30:00.5+05:30');
  const tokens = ['t1', 't2', 't3'].map((id) => token(id, '2022-01-01 00:00:00.5+00'));
  const metadata: DynamoItem = { pk: { S: PK }, sk: { S: 'METADATA' }, repository: { S: '' } };
  const table = [metadata, item('new', '2031-01-01T00:00:00Z'), ...tokens.map((row) => legacy(row.tokenId))];
  async function* rows<T>(values: readonly T[]) {
    yield* values;
  }
  const result = await verifyMigration({
    projects: [project],
    tokens: rows(tokens),
    openPartition: async (pk) => rows(table.filter((entry) => entry.pk?.S === pk)),
    scanKeys: () => rows([{ items: table.map((entry) => ({ pk: entry.pk!, sk: entry.sk! })) }]),
    concurrency: 1,
    planFixes: { limit: 1, keep: changesRow },
  });
  assert.equal(result.totals.differences, 4);
  assert.notEqual(result.changes, undefined, 'within the limit: form-only differences are not kept');
  assert.deepEqual(planRollback(result.changes!, context({ columnLimits: new Map() })).changes.map(formatChange), [
    'insert token new of project alpha',
  ]);
});
