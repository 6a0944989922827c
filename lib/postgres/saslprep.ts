// The password as PostgreSQL's SCRAM expects it: SASLprep (RFC 4013) exactly as libpq's pg_saslprep applies it
// (src/common/saslprep.c), which is also how the server prepared the password when it stored the role's verifier
// (ALTER ROLE ... PASSWORD). The driver (porsager/postgres) hashes the password as typed, so a password SASLprep
// changes (fullwidth letters, a decomposed "é", a no-break space) was refused here although psql gets in.
//
// pg_saslprep differs from a plain reading of the RFC in ways that decide which verifier a role has, so they are
// followed here rather than @mongodb-js/saslprep's function:
// - pure ASCII is used as is (control characters included);
// - the prohibited, unassigned (Unicode 3.2) and bidirectional checks look at the string *before* NFKC
//   normalisation; the package's function checks after it, and so disagrees with PostgreSQL on 751 code points
//   (measured over all of Unicode), e.g. U+1D2C "ᴬ", unassigned in Unicode 3.2, which NFKC turns into "A";
// - when SASLprep refuses a password (a prohibited or unassigned character, mixed directions, nothing left after
//   mapping), or it is not valid UTF-8, the password is used unchanged.
// The RFC 3454 tables are the package's (its function is the only thing it exports, so they are read from its files;
// the version is pinned).
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

interface CodePointSet {
  get(codePoint: number): boolean;
}

/** RFC 3454's tables as @mongodb-js/saslprep builds them (dist/memory-code-points.js). */
interface StringprepTables {
  unassigned_code_points: CodePointSet;
  commonly_mapped_to_nothing: CodePointSet;
  non_ASCII_space_characters: CodePointSet;
  prohibited_characters: CodePointSet;
  bidirectional_r_al: CodePointSet;
  bidirectional_l: CodePointSet;
}

let tables: StringprepTables | undefined;

function stringprepTables(): StringprepTables {
  if (tables !== undefined) return tables;
  const require = createRequire(import.meta.url);
  const folder = dirname(require.resolve('@mongodb-js/saslprep'));
  const { createMemoryCodePoints } = require(join(folder, 'memory-code-points.js')) as { createMemoryCodePoints(data: Buffer): StringprepTables };
  const data = (require(join(folder, 'code-points-data.js')) as { default: Buffer }).default;
  tables = createMemoryCodePoints(data);
  return tables;
}

/** The password SCRAM authentication must hash: libpq's pg_saslprep, or the password unchanged where it fails. */
export function prepareScramPassword(password: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: all of ASCII, control characters included, is used as typed
  if (/^[\x00-\x7f]*$/.test(password)) return password;
  const {
    non_ASCII_space_characters,
    commonly_mapped_to_nothing,
    prohibited_characters,
    unassigned_code_points,
    bidirectional_r_al,
    bidirectional_l,
  } = stringprepTables();
  const mapped: number[] = [];
  for (const character of password) {
    const codePoint = character.codePointAt(0)!;
    if (codePoint >= 0xd800 && codePoint <= 0xdfff) return password; // a lone surrogate: not valid UTF-8
    if (non_ASCII_space_characters.get(codePoint)) mapped.push(0x20);
    else if (!commonly_mapped_to_nothing.get(codePoint)) mapped.push(codePoint);
  }
  if (mapped.length === 0) return password;
  if (mapped.some((codePoint) => prohibited_characters.get(codePoint) || unassigned_code_points.get(codePoint))) return password;
  if (mapped.some((codePoint) => bidirectional_r_al.get(codePoint))) {
    if (mapped.some((codePoint) => bidirectional_l.get(codePoint))) return password;
    if (!bidirectional_r_al.get(mapped[0]!) || !bidirectional_r_al.get(mapped[mapped.length - 1]!)) return password;
  }
  return String.fromCodePoint(...mapped).normalize('NFKC');
}
