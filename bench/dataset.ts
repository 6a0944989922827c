// The benchmark's data: the Cello PostgreSQL database seeded in SQL (generate_series, no row-by-row inserts), and
// the items an earlier, buggy migration would have stored from it (timestamps as PostgreSQL text), for the
// timestamp repair.
import type { DynamoItem } from '../lib/dynamodb/batch.ts';
import type { AdminSql } from '../tools/localStack.ts';

/**
 * `projects` projects, one in ten without a repository; `tokens` tokens with microsecond timestamps, one in three
 * never expiring. Tokens are spread unevenly, the way real projects differ: the share of project k falls with k
 * (the first of 1,000 projects holds about 3 % of the tokens, most hold a few dozen, some none).
 */
export function seedSql(projects: number, tokens: number): string {
  const name = (number: string) => `'project-' || lpad((${number})::text, 7, '0')`;
  return `
INSERT INTO projects (project, repository)
  SELECT ${name('p')}, CASE WHEN p % 10 = 0 THEN NULL ELSE 'https://github.com/example-org/repository-' || p END
  FROM generate_series(1, ${projects}) AS p;
INSERT INTO tokens (token_id, created_at, project, expires_at)
  SELECT 'tok_' || md5(i::text),
         timestamptz '2021-01-01 00:00:00.000001+00' + i * interval '17.000123 seconds',
         ${name(`1 + floor(${projects} * power(mod(i * 0.6180339887, 1), 2))::int`)},
         CASE WHEN i % 3 = 0 THEN NULL ELSE timestamptz '2026-01-01 00:00:00+00' + i * interval '1 minute 0.000007 seconds' END
  FROM generate_series(1, ${tokens}) AS i;
`;
}

interface LegacyRow {
  pk: string;
  sk: string;
  repository: string | null;
  token_id: string | null;
  created_at: string | null;
  expires_at: string | null;
}

/**
 * Every project and token as the earlier migration stored them: timestamps as PostgreSQL's text output under
 * TimeZone=UTC (`2021-01-01 00:00:17.000124+00`), NULL as "". Streamed with a cursor, so a million tokens never
 * sit in memory at once. `sql` must use TimeZone=UTC (connectAdmin does).
 */
export async function* legacyItems(sql: AdminSql): AsyncGenerator<DynamoItem> {
  const query = sql.unsafe<LegacyRow[]>(`
    SELECT 'PROJECT#' || project AS pk, 'METADATA' AS sk, coalesce(repository, '') AS repository,
           NULL AS token_id, NULL AS created_at, NULL AS expires_at
    FROM projects
    UNION ALL
    SELECT 'PROJECT#' || project, 'TOKEN#' || token_id, NULL, token_id, created_at::text, coalesce(expires_at::text, '')
    FROM tokens`);
  for await (const rows of query.cursor(2000)) {
    for (const row of rows) {
      if (row.token_id === null) {
        yield { pk: { S: row.pk }, sk: { S: row.sk }, repository: { S: row.repository ?? '' } };
      } else {
        yield {
          pk: { S: row.pk },
          sk: { S: row.sk },
          token_id: { S: row.token_id },
          created_at: { S: row.created_at ?? '' },
          expires_at: { S: row.expires_at ?? '' },
        };
      }
    }
  }
}

interface CatchUpRow {
  pk: string;
  sk: string;
  repository: string | null;
  token_id: string | null;
  created_at: string | null;
  expires_at: string | null;
  /** When the extra token beside it was created (canonical). */
  extra_created_at: string | null;
  kind: number;
}

/**
 * A correct migration of the database, then 1 % of the tokens changed the way a live source moves on after the
 * load (for verify --fix): a third missing (created since), a third with another expires_at (changed since), a
 * third with an extra item beside them (a token revoked since; created as long ago as its neighbour, so the
 * post-cutover guard lets it be deleted). Streamed like legacyItems.
 */
export function catchUpItems(sql: AdminSql): AsyncGenerator<DynamoItem> {
  return driftedItems(sql, 'before the switch');
}

/**
 * A correct migration of the database, then 1 % of the tokens changed in the table the way the service changes it
 * after the switch (for the rollback): a third revoked (deleted), a third with another expires_at, a third with a
 * new token beside them that never expires, created after the switch (after every token of PostgreSQL, so the
 * rollback's guard sees a table that moved on, not a PostgreSQL written to again).
 */
export function rollbackItems(sql: AdminSql): AsyncGenerator<DynamoItem> {
  return driftedItems(sql, 'after the switch');
}

/**
 * The 1 % of the two above. Before the switch the extra token is one PostgreSQL revoked, created as long ago as its
 * neighbour; after it, one the service created, that never expires.
 */
async function* driftedItems(sql: AdminSql, when: 'before the switch' | 'after the switch'): AsyncGenerator<DynamoItem> {
  const isAfterTheSwitch = when === 'after the switch';
  const canonical = (column: string) => `to_char(${column} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US') || '000Z'`;
  // Ten years after a token: later than every token seedSql makes, at any size.
  const afterTheSwitch = canonical("(created_at + interval '10 years')");
  const query = sql.unsafe<CatchUpRow[]>(`
    SELECT 'PROJECT#' || project AS pk, 'METADATA' AS sk, coalesce(repository, '') AS repository,
           NULL AS token_id, NULL AS created_at, NULL AS expires_at, NULL AS extra_created_at, -1 AS kind
    FROM projects
    UNION ALL
    SELECT 'PROJECT#' || project, 'TOKEN#' || token_id, NULL, token_id, ${canonical('created_at')},
           coalesce(${canonical('expires_at')}, ''), ${isAfterTheSwitch ? afterTheSwitch : canonical('created_at')},
           CASE WHEN abs(hashtext(token_id)) % 100 = 0 THEN abs(hashtext(token_id)) % 300 ELSE -1 END
    FROM tokens`);
  for await (const rows of query.cursor(2000)) {
    for (const row of rows) {
      if (row.token_id === null) {
        yield { pk: { S: row.pk }, sk: { S: row.sk }, repository: { S: row.repository ?? '' } };
        continue;
      }
      if (row.kind === 0) continue;
      const token: DynamoItem = {
        pk: { S: row.pk },
        sk: { S: row.sk },
        token_id: { S: row.token_id },
        created_at: { S: row.created_at ?? '' },
        expires_at: { S: row.kind === 100 ? '1999-01-01T00:00:00.000000000Z' : (row.expires_at ?? '') },
      };
      yield token;
      if (row.kind === 200) {
        const suffix = isAfterTheSwitch ? '-new' : '-revoked';
        const created_at = { S: row.extra_created_at ?? '' };
        const expires_at = isAfterTheSwitch ? { S: '' } : token.expires_at!;
        yield { ...token, sk: { S: `${row.sk}${suffix}` }, token_id: { S: `${row.token_id}${suffix}` }, created_at, expires_at };
      }
    }
  }
}
