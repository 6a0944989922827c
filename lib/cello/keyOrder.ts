// The one order of Cello's names and ids: their UTF-8 bytes (code point order), as DynamoDB sorts keys and COLLATE "C"
// in a UTF8 database; the dump checks its rows against it, the load's range probes and verify's merge-join rely on it.

/** JavaScript's `<` compares UTF-16 code units: astral characters (surrogate pairs) before U+E000–U+FFFF, UTF-8 after. */
export function compareUtf8(a: string, b: string): number {
  const length = Math.min(a.length, b.length);
  for (let index = 0; index < length; index++) {
    let x = a.charCodeAt(index);
    let y = b.charCodeAt(index);
    if (x === y) continue;
    // Shift surrogates (0xD800–0xDFFF) above 0xE000–0xFFFF, keeping each group's inner order.
    if (x >= 0xd800) x += x < 0xe000 ? 0x2000 : -0x800;
    if (y >= 0xd800) y += y < 0xe000 ? 0x2000 : -0x800;
    return x - y;
  }
  return a.length - b.length;
}
