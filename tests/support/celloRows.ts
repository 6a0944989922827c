// Fixtures built from Cello's attribute table (lib/cello/items.ts): a value for every attribute of an item, so a test
// covers each attribute the table has, including one added later, without naming them.
import { ATTRIBUTES, type AttributeName, type ItemKind } from '../../lib/cello/items.ts';

/** PostgreSQL's text of a timestamp (TimeZone UTC) and the canonical form the file and the table hold. */
export const SAMPLE_POSTGRES_TIMESTAMP = '2022-02-02 18:01:49.345261+00';
export const SAMPLE_CANONICAL_TIMESTAMP = '2022-02-02T18:01:49.345261000Z';

/** A non-NULL value for each attribute of `of` items, by name: timestamps canonical, or as PostgreSQL prints them. */
export function sampleValues(of: ItemKind, timestamps: 'canonical' | 'postgres' = 'canonical'): Record<string, string> {
  const timestamp = timestamps === 'canonical' ? SAMPLE_CANONICAL_TIMESTAMP : SAMPLE_POSTGRES_TIMESTAMP;
  const sample = { id: 'tok-1', text: 'https://example.com/r', timestamp } as const;
  return Object.fromEntries(ATTRIBUTES.filter((entry) => entry.of === of).map((entry) => [entry.name, sample[entry.kind]]));
}

/** The nullable attributes of `of` items. */
export function nullableAttributes(of: ItemKind): string[] {
  return ATTRIBUTES.filter((entry) => entry.of === of && entry.nullable).map((entry) => entry.name);
}

/** Every attribute of `of` items NULL, by name, as PostgreSQL's row holds it: a fixture sets what it is about. */
export function nullValues<Name extends AttributeName>(of: ItemKind): Record<Name, null> {
  return Object.fromEntries(ATTRIBUTES.filter((entry) => entry.of === of).map((entry) => [entry.name, null])) as Record<Name, null>;
}

/** Every nullable attribute of `of` items as the table stores its NULL (an item a fixture then fills in). */
export function nullItemValues(of: ItemKind): Record<string, { S: string }> {
  return Object.fromEntries(ATTRIBUTES.flatMap((entry) => (entry.of === of && entry.nullable ? [[entry.name, { S: entry.nullInTable }]] : [])));
}
