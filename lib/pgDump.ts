// The text of the migration guide's JSON file (step 1's output, step 2's input), built from PostgreSQL rows as
// they stream in. Pure: rows in, text out; the script does the reading and the writing.
//
//   {
//     "<project>": {
//       "repository": <string or null>,
//       "tokens": [
//         {
//           "token_id": "...",
//           "created_at": "2022-02-02T18:01:49.345261000Z",
//           "expires_at": null
//         }
//       ]
//     }
//   }
//
// Laid out like Python's json.dump(indent=2), one field per line, so the file reads and diffs well and is written
// in order without holding it. Strings go through JSON.stringify one value at a time, so commas, quotes,
// backslashes, newlines, tabs and any unicode come back exactly; the dump's hot path (addRaw) copies the bytes of
// values JSON.stringify would leave alone straight from the driver into the file, and sends every other row
// through the same string code. Projects appear in UTF-8 byte order of their names
// (the query sorts with COLLATE "C": the same order whatever the database's collation; in a database of another
// encoding, by the names converted to UTF-8), tokens in UTF-8 byte order of their ids within each project.
import { isUtf8 } from 'node:buffer';
import {
  CREATED_AT,
  EXPIRES_AT,
  REPOSITORY,
  TIMESTAMP_ATTRIBUTES,
  TOKENS_FIELD,
  TOKEN_ATTRIBUTES,
  TOKEN_ID,
  type TimestampAttribute,
} from './cello/items.ts';
import { compareUtf8 } from './cello/keyOrder.ts';
import { PROJECTS_TABLE, PROJECT_COLUMN, TOKENS_TABLE } from './cello/sourceTables.ts';
import type { OutputPieces } from './files.ts';
import type { TextOrder } from './postgres/textOrder.ts';
import { TimestampError, toCanonicalTimestamp } from './timestamps.ts';

/** The dump query's columns, in order: the row's kind, the project's name and repository, the token's attributes. */
export const DUMP_COLUMNS = ['kind', PROJECT_COLUMN, REPOSITORY, ...TOKEN_ATTRIBUTES] as const;
const TOKEN_ID_COLUMN = DUMP_COLUMNS.indexOf(TOKEN_ID);
const EXPIRES_AT_COLUMN = DUMP_COLUMNS.indexOf(EXPIRES_AT);
const CREATED_AT_COLUMN = DUMP_COLUMNS.indexOf(CREATED_AT);

/**
 * One row of the dump query: a project (kind 0) or a token (kind 1), sorted by project, then kind, then token id,
 * so each project's row comes right before its tokens. Timestamps are PostgreSQL text under TimeZone=UTC.
 */
export type DumpRow = { kind: number } & Record<Exclude<(typeof DUMP_COLUMNS)[number], 'kind'>, string | null>;

export const PROJECT_ROW = 0;
export const TOKEN_ROW = 1;

/**
 * A row of the dump query as the driver's raw mode hands it over: each column's bytes as the server sent them
 * (UTF-8 text), null for NULL, in DUMP_COLUMNS order.
 */
export type RawDumpRow = readonly [kind: Uint8Array, ...columns: (Uint8Array | null)[]];

/** The row the driver would have decoded (its text mode: UTF-8 decoding, kind as a number). */
export function decodeRawDumpRow(row: RawDumpRow): DumpRow {
  const text = (bytes: Uint8Array | null | undefined) =>
    bytes === null || bytes === undefined ? null : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8');
  const decoded: Record<string, string | number | null> = {};
  DUMP_COLUMNS.forEach((column, index) => {
    decoded[column] = index === 0 ? Number(text(row[0])) : text(row[index]);
  });
  return decoded as DumpRow;
}

const asText = (attribute: string) => `${attribute}::text AS ${attribute}`;
const nullAs = (type: string) => (attribute: string) => `NULL::${type} AS ${attribute}`;
const OUTER_COLUMNS = ['kind', PROJECT_COLUMN, REPOSITORY, TOKEN_ID, ...TIMESTAMP_ATTRIBUTES.map(asText)].join(', ');
const NULL_TIMESTAMPS = TIMESTAMP_ATTRIBUTES.map(nullAs('timestamptz')).join(', ');
const TIMESTAMPS = TIMESTAMP_ATTRIBUTES.join(', ');

/**
 * The dump query. One statement, so the server merges the two tables in one sort and the client reads one
 * stream. Timestamps are turned into text after the sort (the subquery), which keeps the rows the server sorts
 * narrow; OFFSET 0 keeps the planner from flattening the subquery and moving the conversion back before it. The
 * outer ORDER BY makes the order a guarantee rather than a habit of the executor; it costs nothing, the planner
 * sees the subquery's rows are already in that order.
 */
export const DUMP_QUERY = `
SELECT ${OUTER_COLUMNS}
FROM (
  SELECT ${PROJECT_ROW} AS kind, ${PROJECT_COLUMN} COLLATE "C" AS ${PROJECT_COLUMN}, ${REPOSITORY},
         NULL::text COLLATE "C" AS ${TOKEN_ID}, ${NULL_TIMESTAMPS}
  FROM ${PROJECTS_TABLE}
  UNION ALL
  SELECT ${TOKEN_ROW}, ${PROJECT_COLUMN} COLLATE "C", NULL, ${TOKEN_ID} COLLATE "C", ${TIMESTAMPS}
  FROM ${TOKENS_TABLE}
  ORDER BY ${PROJECT_COLUMN}, kind, ${TOKEN_ID}
  OFFSET 0
) AS rows_in_order
ORDER BY ${PROJECT_COLUMN}, kind, ${TOKEN_ID}`;

/**
 * The dump query for a database whose encoding is not UTF8 (see TextOrder in lib/postgres/textOrder.ts): the same rows, sorted
 * by the UTF-8 bytes of the names and ids. A UNION's ORDER BY takes only its output columns, so the sort is outside.
 */
export const DUMP_QUERY_CONVERTED = `
SELECT ${OUTER_COLUMNS}
FROM (
  SELECT ${PROJECT_ROW} AS kind, ${PROJECT_COLUMN}, ${REPOSITORY},
         NULL::text AS ${TOKEN_ID}, ${NULL_TIMESTAMPS}
  FROM ${PROJECTS_TABLE}
  UNION ALL
  SELECT ${TOKEN_ROW}, ${PROJECT_COLUMN}, NULL, ${TOKEN_ID}, ${TIMESTAMPS}
  FROM ${TOKENS_TABLE}
) AS all_rows
ORDER BY convert_to(${PROJECT_COLUMN}, 'UTF8'), kind, convert_to(${TOKEN_ID}, 'UTF8')`;

/** The dump query that gives the rows in UTF-8 byte order in the connected database. */
export function dumpQueryFor(order: TextOrder): string {
  return order === 'collate-c' ? DUMP_QUERY : DUMP_QUERY_CONVERTED;
}

/** How many orphan token ids the report quotes. */
export const ORPHAN_SAMPLE_SIZE = 5;

export interface DumpCounts {
  /** Rows of the projects table written. */
  projects: number;
  /** Tokens written (orphans included only with includeOrphans). */
  tokens: number;
  /** Projects written with a NULL repository (orphan entries not counted). */
  nullRepository: number;
  /** Tokens written with a NULL expires_at. */
  nullExpiresAt: number;
  /** Tokens whose project is not in the projects table (written or not). */
  orphanTokens: number;
  /** Distinct project names of those tokens. */
  orphanProjects: number;
  /** The first orphan token ids, in the order read. */
  orphanSample: (string | null)[];
}

/** A value that cannot be written as the guide's JSON; names the token or project. */
export class DumpValueError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DumpValueError';
  }
}

// PostgreSQL's text output of a timestamptz under DateStyle=ISO and TimeZone=UTC, years 1-9999 AD: trailing
// fraction zeros dropped, no fraction at all when it is zero.
const POSTGRES_UTC_TEXT = /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d{1,6})?\+00$/;
// Zeros that pad a fraction of 1-6 digits to nine, indexed by the text's length (24-29); 22 is "no fraction".
const FRACTION_PADDING_BY_LENGTH: Record<number, string> = { 24: '00000000', 25: '0000000', 26: '000000', 27: '00000', 28: '0000', 29: '000' };

/**
 * The canonical timestamp (`2022-02-02T18:01:49.345261000Z`) for PostgreSQL's text output of a timestamptz under
 * TimeZone=UTC and DateStyle=ISO (`2022-02-02 18:01:49.345261+00`).
 *
 * Millions of rows: text of that exact shape (one regular expression test) is rearranged by slicing — the digits
 * are copied, never computed, and the field ranges need no check because PostgreSQL prints only valid dates and
 * times. Anything else — another offset, infinity, BC, a year past 9999 — goes to toCanonicalTimestamp, which
 * converts it exactly or throws a TimestampError saying why.
 */
export function canonicalFromUtcText(text: string): string {
  if (POSTGRES_UTC_TEXT.test(text)) {
    const length = text.length;
    return length === 22
      ? `${text.slice(0, 10)}T${text.slice(11, 19)}.000000000Z`
      : `${text.slice(0, 10)}T${text.slice(11, length - 3)}${FRACTION_PADDING_BY_LENGTH[length]}Z`;
  }
  return toCanonicalTimestamp(text);
}

// The fixed text around a token's values, one field per line: tokenText writes it as strings, addRaw as bytes.
const TOKEN_FIRST = `\n      {\n        ${JSON.stringify(TOKEN_ID)}: `;
const TOKEN_NEXT = `,${TOKEN_FIRST}`;
/** The text before each timestamp's value, in TIMESTAMP_ATTRIBUTES order. */
const TIMESTAMP_FIELDS = TIMESTAMP_ATTRIBUTES.map((attribute) => `,\n        ${JSON.stringify(attribute)}: `);
const TOKEN_END = '\n      }';
const REPOSITORY_FIELD = JSON.stringify(REPOSITORY);
const TOKENS_FIELD_TEXT = JSON.stringify(TOKENS_FIELD);
const TOKEN_FIRST_BYTES = Buffer.from(TOKEN_FIRST);
const TOKEN_NEXT_BYTES = Buffer.from(TOKEN_NEXT);
const [CREATED_AT_FIELD_BYTES, EXPIRES_AT_FIELD_BYTES] = TIMESTAMP_FIELDS.map((text) => Buffer.from(text)) as [Buffer, Buffer];
const TOKEN_END_BYTES = Buffer.from(TOKEN_END);
const NULL_BYTES = Buffer.from('null');
const ZERO_BYTES = Buffer.from('000000000');
const DIGIT_0 = 0x30;
const DIGIT_9 = 0x39;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/**
 * Whether JSON.stringify of this UTF-8 text is the text itself in quotes: no quote, backslash or control character,
 * and valid UTF-8 (JSON.stringify escapes nothing else; valid UTF-8 holds no lone surrogate).
 */
export function isPlainJsonText(bytes: Uint8Array): boolean {
  let ascii = true;
  for (let index = 0; index < bytes.length; index++) {
    const byte = bytes[index]!;
    if (byte < 0x20 || byte === QUOTE || byte === BACKSLASH) return false;
    if (byte >= 0x80) ascii = false;
  }
  return ascii || isUtf8(bytes);
}

function isDigitAt(bytes: Uint8Array, index: number): boolean {
  const byte = bytes[index]!;
  return byte >= DIGIT_0 && byte <= DIGIT_9;
}

/** Where `YYYY-MM-DD HH:MM:SS` has its digits. */
const DATE_TIME_DIGITS = [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18] as const;

/** Byte for byte what POSTGRES_UTC_TEXT matches: `YYYY-MM-DD HH:MM:SS[.f{1,6}]+00`. */
export function isPostgresUtcBytes(bytes: Uint8Array): boolean {
  const length = bytes.length;
  if (length !== 22 && (length < 24 || length > 29)) return false;
  for (const index of DATE_TIME_DIGITS) if (!isDigitAt(bytes, index)) return false;
  if (bytes[4] !== 0x2d || bytes[7] !== 0x2d || bytes[10] !== 0x20 || bytes[13] !== 0x3a || bytes[16] !== 0x3a) return false;
  if (length > 22) {
    if (bytes[19] !== 0x2e) return false;
    for (let index = 20; index < length - 3; index++) if (!isDigitAt(bytes, index)) return false;
  }
  return bytes[length - 3] === 0x2b && bytes[length - 2] === DIGIT_0 && bytes[length - 1] === DIGIT_0;
}

/** canonicalFromUtcText's fast path on bytes, quoted, or null: for text isPostgresUtcBytes accepted (or NULL). */
function writeCanonicalTimestamp(out: OutputPieces, bytes: Uint8Array | null): void {
  if (bytes === null) {
    out.bytes(NULL_BYTES);
    return;
  }
  const length = bytes.length;
  out.byte(QUOTE);
  out.bytes(bytes, 0, 10);
  out.byte(0x54); // T
  if (length === 22) {
    out.bytes(bytes, 11, 19);
    out.byte(0x2e); // .
    out.bytes(ZERO_BYTES);
  } else {
    out.bytes(bytes, 11, length - 3);
    out.bytes(ZERO_BYTES, 0, 32 - length); // a fraction of 1-6 digits (length 24-29) padded to nine
  }
  out.byte(0x5a); // Z
  out.byte(QUOTE);
}

function isTimestampBytesOrNull(bytes: Uint8Array | null): boolean {
  return bytes === null || isPostgresUtcBytes(bytes);
}

/** Buffer.equals, for the ~15 bytes of a project name: a loop is faster than the native call (0.51 s vs 0.60 s per 1M rows). */
function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let index = 0; index < a.length; index++) if (a[index] !== b[index]) return false;
  return true;
}

function jsonValue(value: string | null): string {
  return value === null ? 'null' : JSON.stringify(value);
}

/**
 * Builds the file's text from rows in the dump query's order. Each method returns the text to append; nothing
 * is held but the current project's name.
 */
export class MigrationJsonBuilder {
  private readonly counts: DumpCounts = {
    projects: 0,
    tokens: 0,
    nullRepository: 0,
    nullExpiresAt: 0,
    orphanTokens: 0,
    orphanProjects: 0,
    orphanSample: [],
  };
  /** The project whose entry is open (its tokens follow), or undefined before the first. */
  private currentProject: string | undefined;
  /** currentProject's UTF-8 bytes while its entry is open and not an orphan's: addRaw's fast path applies. */
  private fastPathProject: Uint8Array | undefined;
  /** Whether the open entry is an orphan project (no row in projects). */
  private currentIsOrphan = false;
  /** The project of the last orphan token seen, to count distinct orphan projects. */
  private lastOrphanProject: string | null | undefined;
  private entryOpen = false;
  private entryHasTokens = false;
  private entries = 0;
  private started = false;
  private finished = false;

  constructor(private readonly options: { includeOrphans: boolean }) {}

  /** The opening brace. */
  start(): string {
    this.started = true;
    return '{';
  }

  /** The text for one row of the dump query. @throws DumpValueError for a value the file cannot hold. */
  add(row: DumpRow): string {
    if (!this.started || this.finished) throw new Error('MigrationJsonBuilder.add called outside start()/finish()');
    if (row.kind === PROJECT_ROW) return this.addProject(row[PROJECT_COLUMN], row[REPOSITORY]);
    if (row.kind === TOKEN_ROW) return this.addToken(row);
    throw new Error(`unexpected row kind ${String(row.kind)} from the dump query`);
  }

  /**
   * addRaw(row) writes to `out` exactly the bytes of add(decodeRawDumpRow(row)), with the same counts and errors.
   * Millions of rows: the common one — a token of the open project, a plain id, timestamps of PostgreSQL's UTC
   * shape or NULL — has its bytes copied into place, never decoded, escaped or encoded; any other row takes add().
   */
  addRaw(row: RawDumpRow, out: OutputPieces): void {
    const kind = row[0];
    const project = row[1]!;
    const tokenId = row[TOKEN_ID_COLUMN]!;
    const createdAt = row[CREATED_AT_COLUMN]!;
    const expiresAt = row[EXPIRES_AT_COLUMN]!;
    const fastPathProject = this.fastPathProject;
    if (
      fastPathProject !== undefined &&
      kind.length === 1 &&
      kind[0] === DIGIT_0 + TOKEN_ROW &&
      project !== null &&
      sameBytes(project, fastPathProject) &&
      tokenId !== null &&
      isPlainJsonText(tokenId) &&
      isTimestampBytesOrNull(createdAt) &&
      isTimestampBytesOrNull(expiresAt)
    ) {
      out.bytes(this.entryHasTokens ? TOKEN_NEXT_BYTES : TOKEN_FIRST_BYTES);
      this.entryHasTokens = true;
      out.byte(QUOTE);
      out.bytes(tokenId);
      out.byte(QUOTE);
      out.bytes(CREATED_AT_FIELD_BYTES);
      writeCanonicalTimestamp(out, createdAt);
      out.bytes(EXPIRES_AT_FIELD_BYTES);
      writeCanonicalTimestamp(out, expiresAt);
      out.bytes(TOKEN_END_BYTES);
      this.counts.tokens++;
      if (expiresAt === null) this.counts.nullExpiresAt++;
      return;
    }
    out.text(this.add(decodeRawDumpRow(row)));
  }

  /** The closing text; the file is complete after it. */
  finish(): string {
    this.finished = true;
    this.fastPathProject = undefined;
    const close = this.closeEntry();
    return this.entries === 0 ? '}\n' : `${close}\n}\n`;
  }

  /** Tokens written so far (for progress). */
  get tokenCount(): number {
    return this.counts.tokens;
  }

  summary(): DumpCounts {
    return { ...this.counts, orphanSample: [...this.counts.orphanSample] };
  }

  private addProject(project: string | null, repository: string | null): string {
    if (project === null) throw new DumpValueError('a row of the projects table has a NULL project name, which cannot be a key of the file');
    this.counts.projects++;
    if (repository === null) this.counts.nullRepository++;
    return this.openEntry(project, repository, false);
  }

  private addToken(row: DumpRow): string {
    const project = row.project;
    let text = '';
    // A project's row comes right before its tokens (same name, kind 0 sorts first): a token whose project is not
    // the open entry's, or whose open entry is itself an orphan's, has no row in projects.
    if (project === null || project !== this.currentProject || this.currentIsOrphan) {
      this.counts.orphanTokens++;
      if (project !== this.lastOrphanProject) this.counts.orphanProjects++;
      this.lastOrphanProject = project;
      if (this.counts.orphanSample.length < ORPHAN_SAMPLE_SIZE) this.counts.orphanSample.push(row[TOKEN_ID]);
      // A token without any project name cannot be placed under one, even when orphans are kept.
      if (!this.options.includeOrphans || project === null) return '';
      if (project !== this.currentProject) text = this.openEntry(project, null, true);
    }
    text += this.tokenText(row);
    this.counts.tokens++;
    if (row[EXPIRES_AT] === null) this.counts.nullExpiresAt++;
    return text;
  }

  private tokenText(row: DumpRow): string {
    // Every timestamp is converted before anything is written: the first bad one is the error.
    const timestamps = TIMESTAMP_ATTRIBUTES.map((attribute) => this.timestamp(row, attribute));
    const open = this.entryHasTokens ? TOKEN_NEXT : TOKEN_FIRST;
    this.entryHasTokens = true;
    // Canonical timestamps hold only [0-9TZ:.-]: quoting them needs no escaping.
    const quoted = (timestamp: string | null) => (timestamp === null ? 'null' : `"${timestamp}"`);
    let text = `${open}${jsonValue(row[TOKEN_ID])}`;
    timestamps.forEach((timestamp, index) => {
      text += `${TIMESTAMP_FIELDS[index]}${quoted(timestamp)}`;
    });
    return `${text}${TOKEN_END}`;
  }

  private timestamp(row: DumpRow, field: TimestampAttribute): string | null {
    const text = row[field];
    if (text === null) return null;
    try {
      return canonicalFromUtcText(text);
    } catch (error) {
      if (!(error instanceof TimestampError)) throw error;
      throw new DumpValueError(`token ${jsonValue(row[TOKEN_ID])} of project ${jsonValue(row[PROJECT_COLUMN])}: ${field} ${error.message}`);
    }
  }

  private openEntry(project: string, repository: string | null, isOrphan: boolean): string {
    if (this.currentProject !== undefined) {
      const order = compareUtf8(project, this.currentProject);
      // The query sorts by project: a name that does not come strictly after the last one would be a duplicate
      // key in the file (or a bug in the ordering), never something to write.
      if (order === 0) throw new DumpValueError(`project ${jsonValue(project)} appears more than once in the projects table`);
      if (order < 0) throw new Error(`dump rows out of order: ${jsonValue(project)} after ${jsonValue(this.currentProject)}`);
    }
    const close = this.closeEntry();
    const separator = this.entries === 0 ? '\n' : ',\n';
    this.entries++;
    this.currentProject = project;
    this.currentIsOrphan = isOrphan;
    this.fastPathProject = isOrphan ? undefined : Buffer.from(project, 'utf8');
    this.entryOpen = true;
    this.entryHasTokens = false;
    return `${close}${separator}  ${JSON.stringify(project)}: {\n    ${REPOSITORY_FIELD}: ${jsonValue(repository)},\n    ${TOKENS_FIELD_TEXT}: [`;
  }

  private closeEntry(): string {
    if (!this.entryOpen) return '';
    this.entryOpen = false;
    return this.entryHasTokens ? '\n    ]\n  }' : ']\n  }';
  }
}
