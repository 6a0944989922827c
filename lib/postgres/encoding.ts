// Which characters a database in an encoding other than UTF8 (LATIN1, WIN1252, EUC_JP...) cannot store. Text reaches
// the server as UTF-8 (the driver's client_encoding) and is converted there: one character the encoding lacks fails
// the whole statement (SQLSTATE 22P05), naming neither the row nor the value. So a step that writes asks first,
// and lists the values instead. No JavaScript table of encodings: the server's own conversion answers.
import type { Sql } from './connect.ts';

const UNTRANSLATABLE_CHARACTER = '22P05';

/**
 * The characters of `characters` (one code point each) the connected database cannot store. Asked of the server in
 * one statement for all, halved only while a half fails, each try in a savepoint so the transaction survives: one
 * round trip when every character converts, a few per character that does not.
 */
export async function unencodableCharacters(sql: Sql, characters: readonly string[]): Promise<Set<string>> {
  const refused = new Set<string>();
  const probe = async (part: readonly string[]): Promise<void> => {
    if (part.length === 0) return;
    await sql`SAVEPOINT probe`;
    try {
      await sql.unsafe('SELECT $1::text AS probe', [part.join('')]);
      await sql`RELEASE SAVEPOINT probe`;
      return;
    } catch (error) {
      if ((error as { code?: unknown }).code !== UNTRANSLATABLE_CHARACTER) throw error;
    }
    await sql`ROLLBACK TO SAVEPOINT probe`;
    if (part.length === 1) {
      refused.add(part[0]!);
      return;
    }
    const half = Math.ceil(part.length / 2);
    await probe(part.slice(0, half));
    await probe(part.slice(half));
  };
  await probe(characters);
  return refused;
}

/** The distinct characters outside ASCII (which every server encoding holds) in `texts`; unpaired surrogates, no characters, left out. */
export function nonAsciiCharacters(texts: Iterable<string>): string[] {
  const found = new Set<string>();
  for (const text of texts) {
    if (!/[\u0080-\uffff]/.test(text)) continue;
    for (const character of text) {
      const code = character.charCodeAt(0);
      if (code > 0x7f && (code < 0xd800 || code > 0xdfff || character.length === 2)) found.add(character);
    }
  }
  return [...found];
}
