// Cello's attributes, as data: every step derives what it does with one from its entry (codecs.ts, sourceTables.ts),
// so adding one is one entry here plus tests. One name serves the PostgreSQL column, the file's field and the item's
// attribute. A nullable attribute's NULL is null in the file and `nullInTable` ("", which Cello reads as "none") in
// the table. One that `mayBeAbsent` came after items were written: an item or file record without it holds NULL.
import type { AttributeValue } from '@aws-sdk/client-dynamodb';
import { METADATA_SK } from './keys.ts';

export type ItemKind = 'project' | 'token';

interface AttributeEntry {
  readonly name: string;
  readonly of: ItemKind;
  /** An id is also a key; a timestamp is timestamptz in PostgreSQL, canonical in the table. */
  readonly kind: 'id' | 'text' | 'timestamp';
  /** The column's SQL type in Cello's migrations (a timestamp's is timestamptz). */
  readonly sqlType?: string;
  /** Whether a missing attribute (item) or field (file record) means NULL: it came after items were written. */
  readonly mayBeAbsent?: boolean;
}
/** Nullable: what its NULL means (for messages), how the table stores it; else why it is never NULL (for messages). */
export type CelloAttribute = AttributeEntry &
  ({ readonly nullable: true; readonly means: string; readonly nullInTable: string } | { readonly nullable: false; readonly because: string });

/** How the table holds a PostgreSQL NULL (repository, expires_at); the file holds it as JSON null. */
export const NULL_IN_TABLE = '';

/** Cello's attributes: a project's, then a token's, each in the order the file and the item list them. */
export const ATTRIBUTES = [
  {
    name: 'repository',
    of: 'project',
    kind: 'text',
    sqlType: 'varchar(200)',
    nullable: true,
    means: 'a project without one',
    nullInTable: NULL_IN_TABLE,
  },
  { name: 'token_id', of: 'token', kind: 'id', sqlType: 'varchar(200)', nullable: false, because: 'it is the token' },
  { name: 'created_at', of: 'token', kind: 'timestamp', nullable: false, because: 'every token needs its creation time' },
  { name: 'expires_at', of: 'token', kind: 'timestamp', nullable: true, means: 'a token that never expires', nullInTable: NULL_IN_TABLE },
] as const satisfies readonly CelloAttribute[];

type Entry = (typeof ATTRIBUTES)[number];
export type AttributeName = Entry['name'];
export type ProjectAttribute = Extract<Entry, { of: 'project' }>['name'];
export type TokenAttribute = Extract<Entry, { of: 'token' }>['name'];
export type TimestampAttribute = Extract<Entry, { kind: 'timestamp' }>['name'];
export type TokenValueAttribute = Exclude<TokenAttribute, Extract<Entry, { kind: 'id' }>['name']>;
type AbsentAllowed = Extract<Entry, { mayBeAbsent: true }>['name'];

const names = <T extends string>(entries: readonly CelloAttribute[]) => entries.map((entry) => entry.name as T);
const entriesOf = (of: ItemKind): readonly CelloAttribute[] => ATTRIBUTES.filter((entry) => entry.of === of);

export const PROJECT_ATTRIBUTE_ENTRIES = entriesOf('project');
export const TOKEN_ATTRIBUTE_ENTRIES = entriesOf('token');
/** The id is also the sort key, so the steps handle it apart. */
export const TOKEN_VALUE_ENTRIES = TOKEN_ATTRIBUTE_ENTRIES.filter((entry) => entry.kind !== 'id');
export const PROJECT_ATTRIBUTES = names<ProjectAttribute>(PROJECT_ATTRIBUTE_ENTRIES);
export const TOKEN_ATTRIBUTES = names<TokenAttribute>(TOKEN_ATTRIBUTE_ENTRIES);
export const CELLO_ATTRIBUTES = names<AttributeName>(ATTRIBUTES);
export const TIMESTAMP_ATTRIBUTES = names<TimestampAttribute>(ATTRIBUTES.filter((entry) => entry.kind === 'timestamp'));
export const NULLABLE_ATTRIBUTES = names<AttributeName>(ATTRIBUTES.filter((entry) => entry.nullable));

export const REPOSITORY = 'repository' satisfies ProjectAttribute;
export const TOKEN_ID = 'token_id' satisfies TokenAttribute;
/** The creation time: the cutover guard's clock (lib/verify/cutoverGuard.ts). */
export const CREATED_AT = 'created_at' satisfies TimestampAttribute;
/** The expiry: named for the demo's and the tests' data, never to single it out among the nullable attributes. */
export const EXPIRES_AT = 'expires_at' satisfies TimestampAttribute;
/** The file's list of a project's tokens (a field of the file only, not an attribute). */
export const TOKENS_FIELD = 'tokens';

const BY_NAME: ReadonlyMap<string, CelloAttribute> = new Map(ATTRIBUTES.map((entry) => [entry.name, entry]));

export function attribute(name: AttributeName): CelloAttribute {
  return BY_NAME.get(name)!;
}

export function isAttributeOf(of: ItemKind, name: string): boolean {
  return BY_NAME.get(name)?.of === of;
}

/** A project's METADATA item, its attributes given as the table holds them (a NULL already its nullInTable). */
export function projectItem(pk: string, values: Readonly<Record<ProjectAttribute, string>>): Record<string, AttributeValue> {
  return attributesItem(pk, METADATA_SK, PROJECT_ATTRIBUTES, values);
}

/** A token's item, its attributes as the table holds them; one that may be absent and is not given is left out. */
export function tokenItem(
  pk: string,
  sk: string,
  values: Readonly<Omit<Record<TokenAttribute, string>, AbsentAllowed> & Partial<Record<AbsentAllowed, string>>>,
): Record<string, AttributeValue> {
  return attributesItem(pk, sk, TOKEN_ATTRIBUTES, values);
}

function attributesItem(pk: string, sk: string, attributes: readonly string[], values: Readonly<Record<string, string | undefined>>) {
  const item: Record<string, AttributeValue> = { pk: { S: pk }, sk: { S: sk } };
  for (const name of attributes) {
    const value = values[name];
    if (value !== undefined) item[name] = { S: value };
  }
  return item;
}

/** Names as a sentence lists them: `a, b and c`. */
export function listNames(names: readonly string[]): string {
  return names.length < 2 ? names.join('') : `${names.slice(0, -1).join(', ')} and ${names[names.length - 1]}`;
}
