// How a value from Cello's data is shown in a one-line message: quoted as JSON, cut short (a corrupt row may hold a
// huge string), with U+2028/U+2029 escaped too (JSON.stringify leaves them, and some readers break lines at them).

/** Longest part of a value shown in a message, unless the caller needs it whole (a key the operator must find). */
export const SHOWN_VALUE_LIMIT = 60;

/** `text` cut at `limit` characters, with "…" when it was longer. */
export function cutShort(text: string, limit = SHOWN_VALUE_LIMIT): string {
  return text.length > limit ? `${text.slice(0, limit)}…` : text;
}

/** `value` in a message: a string cut, then JSON-quoted (`"abc…"`); anything else as JSON (or String()), cut. */
export function quoteValue(value: unknown, limit = SHOWN_VALUE_LIMIT): string {
  const text = typeof value === 'string' ? JSON.stringify(cutShort(value, limit)) : cutShort(toJsonOrString(value), limit);
  return text.replace(/\u2028/g, '\\u2028').replace(/\u2029/g, '\\u2029');
}

function toJsonOrString(value: unknown): string {
  try {
    return JSON.stringify(value) ?? String(value); // JSON has no form for undefined, functions and symbols
  } catch {
    return String(value); // BigInt, cycles
  }
}
