// What DynamoDB charges for, from an item's size (Developer Guide, "Item sizes and formats" and "Read/write capacity
// mode"): the metering never counts less than this, whatever a server reports.
import type { AttributeValue } from '@aws-sdk/client-dynamodb';

/** A write unit covers up to 1 KB of item; a read unit up to 4 KB, strongly consistent (half a unit if not). */
export const WRITE_UNIT_BYTES = 1024;
export const READ_UNIT_BYTES = 4096;

export function utf8Bytes(text: string): number {
  return Buffer.byteLength(text, 'utf8');
}

/** DynamoDB's size of a number: 1 byte per two significant digits, plus 1 (leading and trailing zeros trimmed). */
function numberSize(text: string): number {
  const digits = text
    .replace(/[eE].*$/, '')
    .replace(/[^0-9]/g, '')
    .replace(/^0+/, '')
    .replace(/0+$/, '');
  return Math.ceil(Math.max(1, digits.length) / 2) + 1;
}

/** The bytes one value counts for: strings and binaries by length, containers with 3 bytes + 1 per element. */
export function attributeValueSize(value: AttributeValue): number {
  if (value.S !== undefined) return utf8Bytes(value.S);
  if (value.N !== undefined) return numberSize(value.N);
  if (value.B !== undefined) return value.B.length;
  if (value.BOOL !== undefined || value.NULL !== undefined) return 1;
  if (value.SS !== undefined) return value.SS.reduce((sum, text) => sum + utf8Bytes(text), 0);
  if (value.NS !== undefined) return value.NS.reduce((sum, text) => sum + numberSize(text), 0);
  if (value.BS !== undefined) return value.BS.reduce((sum, bytes) => sum + bytes.length, 0);
  if (value.L !== undefined) return 3 + value.L.reduce((sum, element) => sum + 1 + attributeValueSize(element), 0);
  if (value.M !== undefined) return 3 + Object.keys(value.M).length + itemSize(value.M);
  return 0;
}

export function itemSize(item: Record<string, AttributeValue>): number {
  let size = 0;
  for (const name in item) {
    const value = item[name];
    // A value the SDK dropped (a top-level "__proto__") is not ours to judge here: dump-ddb refuses the item.
    size += utf8Bytes(name) + (value === undefined ? 0 : attributeValueSize(value));
  }
  return size;
}

/** The size of an item from its plain JSON (a dump-ddb record); sets dumped as arrays count a byte or so more. */
export function plainItemSize(record: Record<string, unknown>): number {
  let size = 0;
  for (const name in record) size += utf8Bytes(name) + plainValueSize(record[name]);
  return size;
}

function plainValueSize(value: unknown): number {
  if (typeof value === 'string') return utf8Bytes(value);
  if (typeof value === 'number') return numberSize(String(value));
  if (Array.isArray(value)) return 3 + value.reduce((sum: number, element) => sum + 1 + plainValueSize(element), 0);
  if (value !== null && typeof value === 'object') {
    return 3 + Object.keys(value).length + plainItemSize(value as Record<string, unknown>);
  }
  return 1;
}

export function writeUnits(bytes: number): number {
  return Math.max(1, Math.ceil(bytes / WRITE_UNIT_BYTES));
}

/** Read units of `bytes` read at once (one item, or a Query/Scan page): 1 per started 4 KB, at least 1; half if eventually consistent. */
export function readUnits(bytes: number, consistent: boolean): number {
  const units = Math.max(1, Math.ceil(bytes / READ_UNIT_BYTES));
  return consistent ? units : units / 2;
}
