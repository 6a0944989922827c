import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { AttributeValue } from '@aws-sdk/client-dynamodb';
import { AttributeValueError, attributeValueToJson, itemToJson, numberToJson } from '../../lib/dumpDdb/ddbJson.ts';

const bytes = (...values: number[]) => new Uint8Array(values);

test('S becomes a JSON string, escapes included', () => {
  assert.equal(attributeValueToJson({ S: 'plain' }), '"plain"');
  assert.equal(attributeValueToJson({ S: '' }), '""');
  assert.equal(attributeValueToJson({ S: 'quote " backslash \\ newline \n tab \t' }), '"quote \\" backslash \\\\ newline \\n tab \\t"');
  assert.equal(JSON.parse(attributeValueToJson({ S: 'café ☕ 🎻 \u0000' })), 'café ☕ 🎻 \u0000');
});

test('N is written with exactly the digits DynamoDB returned', () => {
  const integer38 = '12345678901234567890123456789012345678';
  const decimal38 = '0.12345678901234567890123456789012345678';
  assert.equal(attributeValueToJson({ N: integer38 }), integer38);
  assert.equal(attributeValueToJson({ N: decimal38 }), decimal38);
  assert.equal(attributeValueToJson({ N: '-99999999999999999999999999999999999999' }), '-99999999999999999999999999999999999999');
  assert.equal(attributeValueToJson({ N: '1E+125' }), '1E+125');
  assert.equal(attributeValueToJson({ N: '1e-130' }), '1e-130');
  assert.equal(attributeValueToJson({ N: '0' }), '0');
  assert.equal(attributeValueToJson({ N: '-0' }), '-0');
  assert.equal(attributeValueToJson({ N: '1.50' }), '1.50');
});

test('N spellings JSON does not allow are rewritten lexically to the same value', () => {
  assert.equal(numberToJson('+5'), '5');
  assert.equal(numberToJson('.5'), '0.5');
  assert.equal(numberToJson('-.5'), '-0.5');
  assert.equal(numberToJson('5.'), '5');
  assert.equal(numberToJson('007'), '7');
  assert.equal(numberToJson('-007.250'), '-7.250');
  assert.equal(numberToJson('000'), '0');
  assert.equal(numberToJson('1.E+5'), '1e+5');
  assert.equal(numberToJson('+00012345678901234567890123456789012345678.9'), '12345678901234567890123456789012345678.9');
});

test('every N text numberToJson returns is valid JSON', () => {
  for (const text of ['+5', '.5', '5.', '007', '1.E5', '-0.0', '12e-07', '+.1e+1']) {
    const json = numberToJson(text);
    assert.doesNotThrow(() => JSON.parse(json), `${text} → ${json}`);
    assert.match(json, /^-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?$/);
  }
});

test('N that is not a decimal number is refused, not written', () => {
  for (const text of ['', '-', '.', 'abc', 'NaN', 'Infinity', '1e', '0x10', '1 2', '١٢']) {
    assert.throws(() => numberToJson(text), AttributeValueError, JSON.stringify(text));
  }
});

test('B becomes its base64 text', () => {
  assert.equal(attributeValueToJson({ B: bytes(0, 1, 2, 253, 254, 255) }), '"AAEC/f7/"');
  assert.equal(attributeValueToJson({ B: bytes() }), '""');
});

test('B that is a view into a larger buffer encodes only its own bytes', () => {
  const whole = bytes(9, 9, 104, 105, 9);
  assert.equal(attributeValueToJson({ B: whole.subarray(2, 4) }), JSON.stringify(Buffer.from('hi').toString('base64')));
});

test('SS, NS and BS become arrays of strings, exact numbers and base64 strings', () => {
  assert.equal(attributeValueToJson({ SS: ['a', '1', ''] }), '["a","1",""]');
  assert.equal(
    attributeValueToJson({ NS: ['1', '12345678901234567890123456789012345678', '-0.5'] }),
    '[1,12345678901234567890123456789012345678,-0.5]',
  );
  assert.equal(attributeValueToJson({ BS: [bytes(1), bytes(255, 255)] }), '["AQ==","//8="]');
});

test('BOOL and NULL become true, false and null', () => {
  assert.equal(attributeValueToJson({ BOOL: true }), 'true');
  assert.equal(attributeValueToJson({ BOOL: false }), 'false');
  assert.equal(attributeValueToJson({ NULL: true }), 'null');
});

test('M becomes an object with names in code-unit order, L an array, nested to any depth', () => {
  const value: AttributeValue = {
    M: {
      zeta: { N: '1' },
      alpha: { L: [{ S: 'x' }, { M: { b: { NULL: true }, a: { BOOL: false } } }, { L: [] }] },
      '': { M: {} },
      Éclair: { NS: ['2'] },
    },
  };
  assert.equal(attributeValueToJson(value), '{"":{},"alpha":["x",{"a":false,"b":null},[]],"zeta":1,"Éclair":[2]}');
});

test('map names that are special in JavaScript are written as plain names', () => {
  const map = JSON.parse('{"__proto__":{"S":"p"},"constructor":{"S":"c"}}') as Record<string, AttributeValue>;
  const text = attributeValueToJson({ M: map });
  assert.equal(text, '{"__proto__":"p","constructor":"c"}');
  // Inside a list, and nested (the SDK delivers these as own properties; see tests/dump-ddb.test.ts).
  const list = JSON.parse(
    '{"L":[{"M":{"__proto__":{"M":{"__proto__":{"N":"1"},"toString":{"S":"t"},"hasOwnProperty":{"BOOL":true}}}}}]}',
  ) as AttributeValue;
  assert.equal(attributeValueToJson(list), '[{"__proto__":{"__proto__":1,"hasOwnProperty":true,"toString":"t"}}]');
});

test('an attribute without a value is refused, not dropped', () => {
  const item = JSON.parse('{"pk":{"S":"PROJECT#a"},"sk":{"S":"X"}}') as Record<string, AttributeValue>;
  Object.defineProperty(item, '__proto__', { value: undefined, enumerable: true });
  assert.throws(() => itemToJson(item), { name: 'AttributeValueError', message: /attribute "__proto__" arrived without a value/ });
});

test('an unknown type is refused with its name', () => {
  assert.throws(() => attributeValueToJson({ $unknown: ['DATE', '2024'] } as AttributeValue), {
    name: 'AttributeValueError',
    message: /unsupported type "DATE"/,
  });
  assert.throws(() => attributeValueToJson({} as AttributeValue), AttributeValueError);
});

test('itemToJson puts pk and sk first, then the other names in order', () => {
  const item: Record<string, AttributeValue> = {
    token_id: { S: 't1' },
    sk: { S: 'TOKEN#t1' },
    created_at: { S: '2022-02-02T18:01:49.345261000Z' },
    pk: { S: 'PROJECT#alpha' },
  };
  assert.equal(itemToJson(item), '{"pk":"PROJECT#alpha","sk":"TOKEN#t1","created_at":"2022-02-02T18:01:49.345261000Z","token_id":"t1"}');
});

test('itemToJson of an item without key attributes still writes every attribute', () => {
  assert.equal(itemToJson({ b: { N: '2' }, a: { S: '1' } }), '{"a":"1","b":2}');
});

test('itemToJson names the item when one of its values cannot be written', () => {
  assert.throws(() => itemToJson({ pk: { S: 'PROJECT#a' }, sk: { S: 'METADATA' }, bad: { N: 'x' } }), {
    name: 'AttributeValueError',
    message: /^item \[PROJECT#a\]\[METADATA\]: N value "x"/,
  });
});

test('the JSON text parses back to the plain value the mapping describes', () => {
  const item: Record<string, AttributeValue> = {
    pk: { S: 'PROJECT#p' },
    sk: { S: 'TOKEN#t' },
    s: { S: 'text' },
    n: { N: '42' },
    b: { B: bytes(104, 105) },
    ss: { SS: ['x', 'y'] },
    ns: { NS: ['1', '2.5'] },
    bs: { BS: [bytes(0)] },
    m: { M: { k: { S: 'v' } } },
    l: { L: [{ N: '1' }, { S: '1' }] },
    yes: { BOOL: true },
    none: { NULL: true },
    empty: { S: '' },
  };
  assert.deepEqual(JSON.parse(itemToJson(item)), {
    pk: 'PROJECT#p',
    sk: 'TOKEN#t',
    s: 'text',
    n: 42,
    b: 'aGk=',
    ss: ['x', 'y'],
    ns: [1, 2.5],
    bs: ['AA=='],
    m: { k: 'v' },
    l: [1, '1'],
    yes: true,
    none: null,
    empty: '',
  });
});
