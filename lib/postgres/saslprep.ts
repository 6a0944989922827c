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

/** RFC 3454's mapping: non-ASCII spaces to a space, B.1 to nothing. Undefined for a lone surrogate: not valid UTF-8. */
function mapCodePoints(password: string, prep: StringprepTables): number[] | undefined {
  const mapped: number[] = [];
  for (const character of password) {
    const codePoint = character.codePointAt(0)!;
    if (codePoint >= 0xd800 && codePoint <= 0xdfff) return undefined;
    if (prep.non_ASCII_space_characters.get(codePoint)) mapped.push(0x20);
    else if (!prep.commonly_mapped_to_nothing.get(codePoint)) mapped.push(codePoint);
  }
  return mapped;
}

/** Whether pg_saslprep refuses the mapped code points: prohibited, unassigned, or right-to-left text mixed or misplaced. */
function isRefused(mapped: number[], prep: StringprepTables): boolean {
  if (mapped.some((codePoint) => prep.prohibited_characters.get(codePoint) || prep.unassigned_code_points.get(codePoint))) return true;
  if (!mapped.some((codePoint) => prep.bidirectional_r_al.get(codePoint))) return false;
  if (mapped.some((codePoint) => prep.bidirectional_l.get(codePoint))) return true;
  return !prep.bidirectional_r_al.get(mapped[0]!) || !prep.bidirectional_r_al.get(mapped[mapped.length - 1]!);
}

/** The password SCRAM authentication must hash: libpq's pg_saslprep, or the password unchanged where it fails. */
export function prepareScramPassword(password: string): string {
  if (!/[\u0080-\uffff]/.test(password)) return password;
  const prep = stringprepTables();
  const mapped = mapCodePoints(password, prep);
  if (mapped === undefined || mapped.length === 0 || isRefused(mapped, prep)) return password;
  return String.fromCodePoint(...mapped).normalize('NFKC');
}
