// Cello's values between the places an attribute lives, derived from its entry (items.ts): file record → table item,
// table item → PostgreSQL row (lib/dump writes row → file), and the NULL counters. Timestamps are converted as text.
import type { AttributeValue } from '@aws-sdk/client-dynamodb';
import { TimestampError, toCanonicalTimestamp } from './timestamps.ts';
import { ATTRIBUTES, NULLABLE_ATTRIBUTES, type CelloAttribute, type ItemKind } from './items.ts';

/** What the file holds instead of what was expected: "a number", "an array", "null"... */
export function describeType(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  const type = typeof value;
  return type === 'object' ? 'an object' : type === 'string' || type === 'number' || type === 'boolean' ? `a ${type}` : type;
}

/**
 * Whether a field of the file stands for PostgreSQL's NULL: null; missing, for an attribute that may be absent; or
 * "" for a nullable timestamp (the original Python dump wrote a NULL expires_at so: nothing else can be meant by it).
 */
export function isNullInFile(entry: CelloAttribute, value: unknown): boolean {
  if (!entry.nullable) return false;
  return value === null || (value === undefined && entry.mayBeAbsent === true) || (value === '' && entry.kind === 'timestamp');
}

/** The table's value for a field of the file (undefined when missing); undefined after recording in `problems` why not. */
export function itemValueFromFile(entry: CelloAttribute, value: unknown, problems: string[]): string | undefined {
  if (entry.nullable && isNullInFile(entry, value)) return entry.nullInTable;
  if (typeof value === 'string') return checkedText(entry, value, problems, toCanonicalTimestamp);
  problems.push(`${entry.name} ${whyNotText(entry, value)}`);
  return undefined;
}

/** An id not empty, a timestamp in `timestampForm`; other text as it is. Undefined after recording in `problems` why not. */
function checkedText(entry: CelloAttribute, text: string, problems: string[], timestampForm: (text: string) => string): string | undefined {
  try {
    if (entry.kind === 'timestamp') return timestampForm(text);
    if (entry.kind === 'text' || text !== '') return text;
    problems.push(`${entry.name} is empty`);
  } catch (error) {
    if (!(error instanceof TimestampError)) throw error;
    problems.push(`${entry.name} ${error.message}`);
  }
  return undefined;
}

/** Why a field of the file that is no string (missing, null, a number...) is not a value of the attribute. */
function whyNotText(entry: CelloAttribute, value: unknown): string {
  if (value === undefined) return `is missing${entry.nullable ? ` (use null for ${entry.means})` : ''}`;
  if (value === null) return `is null${entry.nullable ? '' : `; ${entry.because}`}`;
  const what = entry.kind === 'timestamp' ? 'a timestamp string' : 'a string';
  return `must be ${what}${entry.nullable ? ' or null' : ''}, got ${describeType(value)}`;
}

/** Whether an item's value of the attribute (its text, undefined when lacking) is PostgreSQL's NULL. */
export function isNullInItem(entry: CelloAttribute, value: unknown): boolean {
  return entry.nullable && (value === entry.nullInTable || (value === undefined && entry.mayBeAbsent === true));
}

/** PostgreSQL keeps microseconds. */
const POSTGRES_FRACTION_DIGITS = 6;

/**
 * PostgreSQL's text of a canonical timestamp under TimeZone=UTC, DateStyle=ISO (`2022-02-02 18:01:49.345261+00`, the
 * fraction's trailing zeros dropped): the text the dump read. @throws TimestampError past the microsecond (it would round).
 */
export function toPostgresTimestamp(canonical: string): string {
  const fraction = canonical.slice(20, 29);
  if (!/^0*$/.test(fraction.slice(POSTGRES_FRACTION_DIGITS))) {
    throw new TimestampError(canonical, 'PostgreSQL keeps microseconds, and the digits past them are not zero');
  }
  const kept = fraction.slice(0, POSTGRES_FRACTION_DIGITS).replace(/0+$/, '');
  return `${canonical.slice(0, 10)} ${canonical.slice(11, 19)}${kept === '' ? '' : `.${kept}`}+00`;
}

/** PostgreSQL's value for an attribute of a table item (undefined when absent); undefined after recording why not. */
export function rowValueFromItem(entry: CelloAttribute, value: AttributeValue | undefined, problems: string[]): string | null | undefined {
  const name = entry.name;
  if (value === undefined) {
    if (isNullInItem(entry, undefined)) return null;
    problems.push(`${name} is missing`);
    return undefined;
  }
  const text = value.S;
  if (text === undefined) {
    problems.push(`${name} is not a string (DynamoDB type ${Object.keys(value).join('') || 'none'})`);
    return undefined;
  }
  if (isNullInItem(entry, text)) return null;
  return checkedText(entry, text, problems, (timestamp) => toPostgresTimestamp(toCanonicalTimestamp(timestamp)));
}

/** The PostgreSQL row of a table item of kind `of`, or undefined after recording every problem in `problems`. */
export function rowFromItem(of: ItemKind, item: Readonly<Record<string, AttributeValue>>, problems: string[]) {
  const row: Record<string, string | null> = {};
  const before = problems.length;
  for (const entry of ATTRIBUTES) {
    if (entry.of !== of) continue;
    const value = rowValueFromItem(entry, item[entry.name], problems);
    if (value !== undefined) row[entry.name] = value;
  }
  return problems.length === before ? row : undefined;
}

/** NULLs counted per nullable attribute, by name, in table order. */
export type NullCounts = Record<string, number>;

/** A zero for each nullable attribute (of those `counted`, when given). */
export function emptyNullCounts(counted: (entry: CelloAttribute) => boolean = () => true): NullCounts {
  return Object.fromEntries(ATTRIBUTES.filter((entry) => entry.nullable && counted(entry)).map((entry) => [entry.name, 0]));
}

/** Each count as `label(name, count)`, in table order, joined as a summary line lists them. */
export function formatNullCounts(counts: Readonly<NullCounts>, label: (name: string, count: number) => string): string {
  return NULLABLE_ATTRIBUTES.filter((name) => counts[name] !== undefined)
    .map((name) => label(name, counts[name]!))
    .join(', ');
}
