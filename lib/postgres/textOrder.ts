import { ExitCode, UserError } from '../cli/errors.ts';
import type { Sql } from './connect.ts';

/**
 * How a query sorts text in UTF-8 byte order (the order of the dump file, DynamoDB's sort keys and verify's
 * merge-join). COLLATE "C" sorts by the bytes of the database's encoding, UTF-8 only in a UTF8 database (WIN1252
 * puts "€", 0x80, before "é", 0xE9); elsewhere by the text converted to UTF-8 (convert_to), one conversion a row.
 */
export type TextOrder = 'collate-c' | 'utf8-bytes';

/**
 * The TextOrder for the connected database. @throws UserError (exit 3) for SQL_ASCII: its text is bytes of no
 * declared encoding, which the server passes on unconverted, so they cannot be read as UTF-8 exactly.
 */
export async function readTextOrder(sql: Sql, database: string): Promise<TextOrder> {
  const [row] = await sql<{ encoding: string }[]>`SELECT current_setting('server_encoding') AS encoding`;
  const encoding = row!.encoding;
  if (encoding === 'UTF8') return 'collate-c';
  if (encoding === 'SQL_ASCII') {
    throw new UserError(
      `database ${JSON.stringify(database)} has encoding SQL_ASCII: its text has no declared encoding and cannot be read as UTF-8 exactly — copy the data into a database with a real encoding (e.g. UTF8) and migrate from that`,
      ExitCode.environment,
    );
  }
  return 'utf8-bytes';
}

export function orderByUtf8(column: string, order: TextOrder): string {
  return order === 'collate-c' ? `${column} COLLATE "C"` : `convert_to(${column}, 'UTF8')`;
}
