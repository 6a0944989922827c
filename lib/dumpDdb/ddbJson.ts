// DynamoDB AttributeValues as plain JSON, exactly. The dump of Step 4 is "plain dictionaries": an S is a string,
// an N a number, a map an object... JSON cannot say everything DynamoDB can (a set and a list look alike, a B and
// an S too), so the mapping is lossy in type, but never in value:
//
//   S    → string                    NULL → null
//   N    → number, the exact digits  BOOL → true / false
//   B    → base64 string             M    → object (names in code-unit order)
//   SS   → array of strings          L    → array
//   NS   → array of numbers          BS   → array of base64 strings
//
// Numbers never pass through a JS float (util-dynamodb's unmarshall would round a 38-digit integer or throw): the
// N text is written as it is when it is JSON number syntax (DynamoDB returns numbers normalised), else (`+5`, `.5`,
// `5.`, `007`) rewritten digit by digit, keeping its exact value.
import type { AttributeValue } from '@aws-sdk/client-dynamodb';
import { describeItemKey } from '../cello/keys.ts';

export class AttributeValueError extends Error {
  override name = 'AttributeValueError';
}

// JSON's number grammar (RFC 8259 §6).
const JSON_NUMBER = /^-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?$/;
// Every spelling DynamoDB accepts as input: optional sign, digits with an optional point, optional exponent.
const DECIMAL_NUMBER = /^([+-]?)(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?$/;

/** @throws AttributeValueError when `text` is not a decimal number at all. */
export function numberToJson(text: string): string {
  if (JSON_NUMBER.test(text)) return text;
  const match = DECIMAL_NUMBER.exec(text);
  if (match === null || (match[2] === '' && (match[3] ?? '') === '')) {
    throw new AttributeValueError(`N value ${JSON.stringify(text)} is not a decimal number`);
  }
  const [, sign, integerDigits = '', fractionDigits = '', exponent] = match;
  // Leading zeros are not allowed in JSON ("007" → "7"); they carry no value, so dropping them changes nothing.
  const integer = integerDigits.replace(/^0+(?=\d)/, '') || '0';
  return `${sign === '-' ? '-' : ''}${integer}${fractionDigits === '' ? '' : `.${fractionDigits}`}${exponent === undefined ? '' : `e${exponent}`}`;
}

function base64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');
}

function mapToJson(map: Record<string, AttributeValue>, names: string[]): string {
  let text = '{';
  for (let index = 0; index < names.length; index++) {
    const name = names[index]!;
    const value = map[name];
    // The SDK leaves a top-level attribute named "__proto__" without its value: refuse rather than drop it.
    if (value === undefined || value === null || typeof value !== 'object') {
      throw new AttributeValueError(`attribute ${JSON.stringify(name)} arrived without a value`);
    }
    if (index > 0) text += ',';
    text += `${JSON.stringify(name)}:${attributeValueToJson(value)}`;
  }
  return `${text}}`;
}

/** @throws AttributeValueError for an unknown type or an N that is not a number. */
export function attributeValueToJson(value: AttributeValue): string {
  if (value.S !== undefined) return JSON.stringify(value.S);
  if (value.N !== undefined) return numberToJson(value.N);
  if (value.BOOL !== undefined) return value.BOOL ? 'true' : 'false';
  if (value.NULL !== undefined) return 'null';
  if (value.M !== undefined) return mapToJson(value.M, Object.keys(value.M).sort());
  if (value.L !== undefined) return `[${value.L.map(attributeValueToJson).join(',')}]`;
  if (value.SS !== undefined) return `[${value.SS.map((text) => JSON.stringify(text)).join(',')}]`;
  if (value.NS !== undefined) return `[${value.NS.map(numberToJson).join(',')}]`;
  if (value.B !== undefined) return JSON.stringify(base64(value.B));
  if (value.BS !== undefined) return `[${value.BS.map((bytes) => JSON.stringify(base64(bytes))).join(',')}]`;
  const type = value.$unknown?.[0] ?? Object.keys(value).join(', ');
  throw new AttributeValueError(`attribute value of unsupported type ${JSON.stringify(type || 'none')} cannot be written as JSON`);
}

/** One line: `pk` and `sk` first (a dump reads best so), then the other names in code-unit order (stable text). */
export function itemToJson(item: Record<string, AttributeValue>): string {
  const others = Object.keys(item)
    .filter((name) => name !== 'pk' && name !== 'sk')
    .sort();
  const names = [...['pk', 'sk'].filter((name) => item[name] !== undefined), ...others];
  try {
    return mapToJson(item, names);
  } catch (error) {
    if (error instanceof AttributeValueError) {
      const key = item.pk?.S !== undefined && item.sk?.S !== undefined ? ` ${describeItemKey(item.pk.S, item.sk.S)}` : '';
      throw new AttributeValueError(`item${key}: ${error.message}`);
    }
    throw error;
  }
}
