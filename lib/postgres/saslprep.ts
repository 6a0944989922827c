// The password as PostgreSQL's SCRAM expects it: SASLprep (RFC 4013) exactly as libpq's pg_saslprep applies it, as
// the server did when it stored the role's verifier (the driver hashes the password as typed, so fullwidth letters
// or a decomposed "é" were refused although psql gets in). Why not @mongodb-js/saslprep's function: pg_saslprep uses
// pure ASCII as is, checks prohibited, unassigned (Unicode 3.2) and bidirectional characters *before* NFKC (the
// package after, disagreeing with PostgreSQL on 751 code points, e.g. U+1D2C "ᴬ"), and uses a password it refuses
// unchanged. Its RFC 3454 tables are the package's, read from its files (it exports only its function; pinned).
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
