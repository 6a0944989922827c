// The two kinds of Cello item and their attributes. One name serves three places: the PostgreSQL column
// (sourceTables.ts), the field of the migration file (the dump writes it, the loader reads it) and the attribute
// of the DynamoDB item. A project is its METADATA item (keys.ts) with a repository; a token is its TOKEN#<id>
// item with its id and two timestamps, canonical in the table (lib/cello/timestamps.ts).
//
// NULL: PostgreSQL's NULL repository and NULL expires_at are null in the file and "" in the table (Cello reads ""
// as "none"); a NULL created_at cannot be (the column is NOT NULL, and the loader refuses it).
import type { AttributeValue } from '@aws-sdk/client-dynamodb';
import { METADATA_SK } from './keys.ts';

/** The project's attribute: its repository URL, NULL when it has none. */
export const REPOSITORY = 'repository';
/** The file's list of a project's tokens (a field of the file only, not an attribute). */
export const TOKENS_FIELD = 'tokens';

export const TOKEN_ID = 'token_id';
export const CREATED_AT = 'created_at';
export const EXPIRES_AT = 'expires_at';

/** A token's attributes, in the order the file and the item list them. */
export const TOKEN_ATTRIBUTES = [TOKEN_ID, CREATED_AT, EXPIRES_AT] as const;
export type TokenAttribute = (typeof TOKEN_ATTRIBUTES)[number];

/** Every attribute a Cello item may hold besides its keys: the project's and the token's. */
export const CELLO_ATTRIBUTES = [REPOSITORY, ...TOKEN_ATTRIBUTES] as const;

/** A token's timestamp attributes, in TOKEN_ATTRIBUTES order: canonical in the table, PostgreSQL timestamptz. */
export const TIMESTAMP_ATTRIBUTES = [CREATED_AT, EXPIRES_AT] as const;
export type TimestampAttribute = (typeof TIMESTAMP_ATTRIBUTES)[number];

/** Whether each timestamp may be NULL, and what a NULL means (or why it cannot be one), for messages. */
export const TIMESTAMP_NULL: Record<TimestampAttribute, { nullable: true; means: string } | { nullable: false; because: string }> = {
  [CREATED_AT]: { nullable: false, because: 'every token needs its creation time' },
  [EXPIRES_AT]: { nullable: true, means: 'a token that never expires' },
};

/** How the table holds a PostgreSQL NULL (repository, expires_at); the file holds it as JSON null. */
export const NULL_IN_TABLE = '';

/** A project's METADATA item. `repository` null is written as NULL_IN_TABLE. */
export function projectItem(pk: string, repository: string | null): Record<string, AttributeValue> {
  return { pk: { S: pk }, sk: { S: METADATA_SK }, [REPOSITORY]: { S: repository ?? NULL_IN_TABLE } };
}

/** A token's item; `values` are in TOKEN_ATTRIBUTES order, timestamps canonical, a NULL already NULL_IN_TABLE. */
export function tokenItem(pk: string, sk: string, values: Readonly<Record<TokenAttribute, string>>): Record<string, AttributeValue> {
  const item: Record<string, AttributeValue> = { pk: { S: pk }, sk: { S: sk } };
  for (const attribute of TOKEN_ATTRIBUTES) item[attribute] = { S: values[attribute] };
  return item;
}

/** Names as a sentence lists them: `a, b and c`. */
export function listNames(names: readonly string[]): string {
  return names.length < 2 ? names.join('') : `${names.slice(0, -1).join(', ')} and ${names[names.length - 1]}`;
}
