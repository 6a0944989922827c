// The migration guide as data: its fenced code blocks, the shell commands in them, the local values that replace
// the guide's placeholders, and the comparison of a command's real output with the output the guide shows.
// Pure (text in, values out): tests/docs.test.ts runs the guide's blocks with bash, scripts/demo.ts runs chosen
// commands itself; both read them from the guide through this module, so neither can drift from it.
//
// Fence metadata. GitHub shows only the first word of a fence's info string (the language); the words after it
// are for the tools:
//   ```sh id=extract          a block the demo or the doc test refers to by name
//   ```sh no-test id=tls      not run by the doc test (it cannot run here); the test lists each such id with a reason
//   ```sh examples            independent examples: the doc test runs each command on its own, in a fresh folder
//   ```sh exit=4              the block's last command is expected to fail with this exit code
//   ```text output            what the preceding shell block prints (stdout and stderr together), compared by shape
//   ```json file=x.json       the shape of file x.json after the preceding shell block

/** One fenced code block of a Markdown document. */
export interface CodeBlock {
  /** The fence's first word: sh, bash, text, json... ('' when the fence has none). */
  language: string;
  /** Words of the info string without "=": no-test, examples, output. */
  tags: ReadonlySet<string>;
  /** name=value words of the info string: id, exit, file. */
  attributes: ReadonlyMap<string, string>;
  /** The block's content, without the fences and the fence's indentation; ends with a newline unless empty. */
  text: string;
  /** 1-based line of the opening fence. */
  line: number;
  /** The last heading above the block ('' before the first). */
  heading: string;
}

const SHELL_LANGUAGES: ReadonlySet<string> = new Set(['sh', 'bash']);

export function isShellBlock(block: CodeBlock): boolean {
  return SHELL_LANGUAGES.has(block.language);
}

/** A block's name for messages: its id, or its line and heading. */
export function describeBlock(block: CodeBlock): string {
  const id = block.attributes.get('id');
  return `${id === undefined ? '' : `"${id}" `}(line ${block.line}, under "${block.heading}")`;
}

export class GuideFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'GuideFormatError';
  }
}

const FENCE = /^(\s*)(`{3,}|~{3,})(.*)$/;

/**
 * Every fenced code block of `markdown`, in document order.
 * @throws GuideFormatError for a fence that is never closed.
 */
export function extractCodeBlocks(markdown: string): CodeBlock[] {
  const lines = markdown.split(/\r?\n/);
  const blocks: CodeBlock[] = [];
  let heading = '';
  for (let index = 0; index < lines.length; index++) {
    const line = lines[index]!;
    const headingMatch = /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(line);
    if (headingMatch) {
      heading = headingMatch[1]!;
      continue;
    }
    const open = FENCE.exec(line);
    if (open === null) continue;
    const [, indent = '', fence = '', info = ''] = open;
    if (fence[0] === '`' && info.includes('`')) continue; // inline code spanning a line, not a fence
    const words = info
      .trim()
      .split(/\s+/)
      .filter((word) => word !== '');
    const tags = new Set<string>();
    const attributes = new Map<string, string>();
    for (const word of words.slice(1)) {
      const equals = word.indexOf('=');
      if (equals > 0) attributes.set(word.slice(0, equals), word.slice(equals + 1));
      else tags.add(word);
    }
    const openLine = index + 1;
    const content: string[] = [];
    let closed = false;
    for (index++; index < lines.length; index++) {
      const inner = lines[index]!;
      const close = FENCE.exec(inner);
      if (close && close[2]![0] === fence[0] && close[2]!.length >= fence.length && close[3]!.trim() === '') {
        closed = true;
        break;
      }
      content.push(inner.startsWith(indent) ? inner.slice(indent.length) : inner.trimStart());
    }
    if (!closed) throw new GuideFormatError(`the code block opened on line ${openLine} is never closed`);
    blocks.push({
      language: words[0] ?? '',
      tags,
      attributes,
      text: content.length === 0 ? '' : `${content.join('\n')}\n`,
      line: openLine,
      heading,
    });
  }
  return blocks;
}

/** The block with `id=<id>`. @throws GuideFormatError when there is none, or more than one. */
export function findBlock(blocks: readonly CodeBlock[], id: string): CodeBlock {
  const found = blocks.filter((block) => block.attributes.get('id') === id);
  if (found.length !== 1) throw new GuideFormatError(`the guide has ${found.length} code blocks with id=${id}, expected exactly one`);
  return found[0]!;
}

// ---- shell commands ------------------------------------------------------------------------------------------------

/**
 * The commands of a shell block: one per logical line (backslash-newline continuations joined), comment lines and
 * blank lines dropped. Quotes may span lines; a `#` starting a word outside quotes begins a comment.
 */
export function splitCommands(text: string): string[] {
  const commands: string[] = [];
  let current = '';
  let quote: "'" | '"' | undefined;
  let wordStart = true;
  const finish = () => {
    if (current.trim() !== '') commands.push(current.trim());
    current = '';
    wordStart = true;
  };
  for (let index = 0; index < text.length; index++) {
    const character = text[index]!;
    if (quote !== undefined) {
      current += character;
      if (character === '\\' && quote === '"' && index + 1 < text.length) current += text[++index]!;
      else if (character === quote) quote = undefined;
      continue;
    }
    if (character === '\\' && text[index + 1] === '\n') {
      index++; // a continuation: the command goes on on the next line
      current += ' ';
      wordStart = true;
      continue;
    }
    if (character === '\\' && index + 1 < text.length) {
      current += character + text[++index]!;
      wordStart = false;
      continue;
    }
    if (character === '#' && wordStart) {
      while (index + 1 < text.length && text[index + 1] !== '\n') index++;
      continue;
    }
    if (character === '\n') {
      finish();
      continue;
    }
    if (character === "'" || character === '"') quote = character;
    current += character;
    wordStart = /[\s;&|()]/.test(character);
  }
  if (quote !== undefined) throw new GuideFormatError(`unterminated ${quote} quote in: ${current.trim()}`);
  finish();
  return commands;
}

/** Shell syntax the simple-command parser does not take (pipes, redirections, expansions, globs...). */
export class ShellSyntaxError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ShellSyntaxError';
  }
}

const UNSUPPORTED_UNQUOTED = new Set(['|', '&', ';', '<', '>', '(', ')', '$', '`', '*', '?', '[', ']', '{', '}', '~', '!']);

interface ShellWord {
  value: string;
  /** Index in `value` of the first character that came from inside quotes or an escape; -1 if none. */
  firstQuoted: number;
}

function shellWords(command: string): ShellWord[] {
  const words: ShellWord[] = [];
  let word: ShellWord | undefined;
  const append = (text: string, quoted: boolean) => {
    word ??= { value: '', firstQuoted: -1 };
    if (quoted && word.firstQuoted < 0) word.firstQuoted = word.value.length;
    word.value += text;
  };
  for (let index = 0; index < command.length; index++) {
    const character = command[index]!;
    if (/\s/.test(character)) {
      if (word) words.push(word);
      word = undefined;
    } else if (character === "'") {
      const end = command.indexOf("'", index + 1);
      if (end < 0) throw new ShellSyntaxError(`unterminated ' quote in: ${command}`);
      append(command.slice(index + 1, end), true);
      index = end;
    } else if (character === '"') {
      let text = '';
      for (index++; index < command.length && command[index] !== '"'; index++) {
        const inner = command[index]!;
        if (inner === '$' || inner === '`') throw new ShellSyntaxError(`expansions are not supported (${inner} in double quotes): ${command}`);
        if (inner === '\\' && /["\\$`\n]/.test(command[index + 1] ?? '')) text += command[++index]!;
        else text += inner;
      }
      if (index >= command.length) throw new ShellSyntaxError(`unterminated " quote in: ${command}`);
      append(text, true);
    } else if (character === '\\') {
      if (index + 1 >= command.length) throw new ShellSyntaxError(`a backslash ends the command: ${command}`);
      append(command[++index]!, true);
    } else if (character === '#' && word === undefined) {
      break; // a comment
    } else if (UNSUPPORTED_UNQUOTED.has(character)) {
      throw new ShellSyntaxError(`"${character}" is not supported here (only simple commands): ${command}`);
    } else {
      append(character, false);
    }
  }
  if (word) words.push(word);
  return words;
}

/** A simple command: `NAME=value ... word word ...`, or `export NAME=value`. */
type ParsedCommand = { kind: 'run'; assignments: ReadonlyMap<string, string>; words: string[] } | { kind: 'export'; name: string; value: string };

const ASSIGNMENT = /^([A-Za-z_][A-Za-z0-9_]*)=/;

/**
 * Parses one simple command as bash would split it into words: single and double quotes, backslash escapes,
 * leading variable assignments, `export NAME=value`. No expansions: anything bash would expand, and pipes,
 * redirections and lists, are a ShellSyntaxError.
 */
export function parseCommand(command: string): ParsedCommand {
  const words = shellWords(command);
  const assignments = new Map<string, string>();
  let first = 0;
  for (; first < words.length; first++) {
    const word = words[first]!;
    const match = ASSIGNMENT.exec(word.value);
    // Only an unquoted NAME= makes an assignment (bash: 'A=b' is a command name).
    if (match === null || (word.firstQuoted >= 0 && word.firstQuoted < match[0].length)) break;
    assignments.set(match[1]!, word.value.slice(match[0].length));
  }
  const rest = words.slice(first).map((word) => word.value);
  if (rest[0] === 'export' && assignments.size === 0) {
    const argument = words[first + 1];
    const match = argument === undefined ? null : ASSIGNMENT.exec(argument.value);
    if (rest.length !== 2 || match === null || argument === undefined)
      throw new ShellSyntaxError(`only "export NAME=value" is supported: ${command}`);
    return { kind: 'export', name: match[1]!, value: argument.value.slice(match[0].length) };
  }
  if (rest.length === 0) throw new ShellSyntaxError(`no command, only assignments: ${command}`);
  return { kind: 'run', assignments, words: rest };
}

/** A run of one of this toolkit's scripts, the two ways the guide writes it. */
interface ScriptInvocation {
  /** Environment assignments in front of the command (PGPASSWORD=..., PGSSLMODE=...). */
  env: ReadonlyMap<string, string>;
  /** The file name under scripts/, e.g. migrate_dump_postgres.ts. */
  script: string;
  args: string[];
}

/** `npx tsx scripts/<name>.ts ...` or `./scripts/<name>.ts ...` as a script and its arguments; undefined otherwise. */
export function scriptInvocation(command: ParsedCommand): ScriptInvocation | undefined {
  if (command.kind !== 'run') return undefined;
  const { words, assignments } = command;
  let path: string | undefined;
  let args: string[];
  if (words[0] === 'npx' && words[1] === 'tsx' && words[2] !== undefined) {
    path = words[2];
    args = words.slice(3);
  } else {
    path = words[0];
    args = words.slice(1);
    if (!path?.startsWith('./')) return undefined;
  }
  const match = /^(?:\.\/)?scripts\/([\w.-]+\.ts)$/.exec(path ?? '');
  if (match === null) return undefined;
  return { env: assignments, script: match[1]!, args };
}

/** Every `scripts/<name>.ts` a text mentions, once each, in order of first mention. */
export function mentionedScripts(text: string): string[] {
  return [...new Set([...text.matchAll(/(?<![\w/.-])(?:\.\/)?scripts\/([\w-]+(?:\.[\w-]+)*\.ts)\b/g)].map((match) => match[1]!))];
}

// ---- placeholders ------------------------------------------------------------------------------------------------

/** A replacement of the guide's placeholder values by local ones; applied in order. */
interface Substitution {
  pattern: RegExp;
  replacement: string;
}

/** Applies `substitutions` in order (each pattern must be global). */
export function substitute(text: string, substitutions: readonly Substitution[]): string {
  let result = text;
  for (const { pattern, replacement } of substitutions) result = result.replace(pattern, () => replacement);
  return result;
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** The guide's PostgreSQL host placeholders, with or without a port. */
const GUIDE_POSTGRES_HOSTS = ['localhost', 'db.example.com', '192.168.1.100'] as const;
const GUIDE_USER = 'cello_user';
/** The user of "Rolling back": it may also write the two tables (tools/localStack.ts, CELLO_TABLE_RIGHTS). */
const GUIDE_ROLLBACK_USER = 'cello_rollback';
const GUIDE_DATABASE = 'cello_db';
const GUIDE_PASSWORD = 'your_password';
const GUIDE_TABLE = 'cello';
/** The guide's local DynamoDB endpoint (DynamoDB Local's default port). */
const GUIDE_ENDPOINT = 'http://localhost:8000';

export interface LocalValues {
  /** Where PostgreSQL listens: 127.0.0.1:54321. */
  postgresHostPort: string;
  user: string;
  /** The user "Rolling back" runs as, which may also write. */
  rollbackUser: string;
  database: string;
  password: string;
  table: string;
  endpoint: string;
}

/**
 * The guide's placeholders → a local stack, in an order where no replacement is matched again:
 *   http://localhost:8000                     → the local DynamoDB endpoint
 *   psql's -h localhost / -p 5432             → the local host / port
 *   localhost, db.example.com, 192.168.1.100  → host:port of the local PostgreSQL (with or without a port)
 *   your_password                             → the local password
 *   cello_user, cello_rollback, cello_db      → the local users and database
 *   cello (a whole word: not cello_db, cello-migrate, cello.json) → the local table
 * Region names are left alone: a local endpoint accepts any.
 */
export function localSubstitutions(local: LocalValues): Substitution[] {
  const [host = '', port = ''] = splitHostPort(local.postgresHostPort);
  const hosts = GUIDE_POSTGRES_HOSTS.map(escapeRegExp).join('|');
  return [
    { pattern: new RegExp(escapeRegExp(GUIDE_ENDPOINT), 'g'), replacement: local.endpoint },
    { pattern: /(?<=\s-h\s+)localhost(?![\w.:-])/g, replacement: host },
    { pattern: /(?<=\s-p\s+)5432(?!\d)/g, replacement: port },
    { pattern: new RegExp(`(?<![\\w.:/@-])(?:${hosts})(?::\\d+)?(?![\\w.:-])`, 'g'), replacement: local.postgresHostPort },
    { pattern: new RegExp(`(?<![\\w-])${escapeRegExp(GUIDE_PASSWORD)}(?![\\w-])`, 'g'), replacement: local.password },
    { pattern: new RegExp(`(?<![\\w-])${escapeRegExp(GUIDE_USER)}(?![\\w-])`, 'g'), replacement: local.user },
    { pattern: new RegExp(`(?<![\\w-])${escapeRegExp(GUIDE_ROLLBACK_USER)}(?![\\w-])`, 'g'), replacement: local.rollbackUser },
    { pattern: new RegExp(`(?<![\\w-])${escapeRegExp(GUIDE_DATABASE)}(?![\\w-])`, 'g'), replacement: local.database },
    { pattern: new RegExp(`(?<![\\w.#/-])${escapeRegExp(GUIDE_TABLE)}(?![\\w.-])`, 'g'), replacement: local.table },
  ];
}

/** The local superuser's name: a word that occurs by chance, never mapped back. */
const SUPERUSER = 'postgres';

/**
 * The other way, for outputs: local values a script prints (its table, database, server, users: a privilege error
 * names its user) → the guide's. Only values unlikely to occur by chance are mapped back; the superuser's name
 * ("postgres") and the password are not.
 */
export function reverseSubstitutions(local: LocalValues): Substitution[] {
  const pairs: [string, string][] = [
    [local.endpoint, GUIDE_ENDPOINT],
    [local.postgresHostPort, 'localhost:5432'],
    [local.database, GUIDE_DATABASE],
    [local.table, GUIDE_TABLE],
    ...(
      [
        [local.user, GUIDE_USER],
        [local.rollbackUser, GUIDE_ROLLBACK_USER],
      ] as [string, string][]
    ).filter(([user]) => user !== SUPERUSER),
  ];
  return pairs
    .filter(([from, to]) => from !== to && from !== '')
    .sort((a, b) => b[0].length - a[0].length)
    .map(([from, to]) => ({ pattern: new RegExp(`(?<![\\w-])${escapeRegExp(from)}(?![\\w-])`, 'g'), replacement: to }));
}

function splitHostPort(hostPort: string): [string, string] {
  const colon = hostPort.lastIndexOf(':');
  return colon < 0 ? [hostPort, '5432'] : [hostPort.slice(0, colon).replace(/^\[(.*)\]$/, '$1'), hostPort.slice(colon + 1)];
}

// ---- output shapes -----------------------------------------------------------------------------------------------

const RFC3339 = /\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2})/g;
const POSTGRES_TEXT = /\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[+-]\d{2}(?::\d{2})?)?/g;
const NUMBER = /\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?/g;

/**
 * A line with its values abstracted: RFC 3339 timestamps → <iso-timestamp>, PostgreSQL-text timestamps → <pg-timestamp>
 * (kept apart: "legacy → canonical" must not match "canonical → canonical"), then every number (1,234 and 0.5
 * too) → <n>. Trailing spaces are dropped.
 */
export function lineShape(line: string): string {
  return line.trimEnd().replace(RFC3339, '<iso-timestamp>').replace(POSTGRES_TEXT, '<pg-timestamp>').replace(NUMBER, '<n>');
}

/** The lines of an output, shaped, without leading and trailing blank lines. */
export function outputShape(text: string): string[] {
  const lines = text.replace(/\r\n/g, '\n').split('\n').map(lineShape);
  while (lines.length > 0 && lines[0] === '') lines.shift();
  while (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  return lines;
}

/**
 * Does `actual` have the shape of `expected`? Both are shaped (outputShape), then:
 *   1. every line of actual is one of expected's lines (no kind of line the guide does not show), and
 *   2. expected's lines occur in actual in the same order (every line the guide shows is there).
 * A guide may show one record block where a run prints several: repeats are allowed, omissions and new kinds
 * of lines are not. Returns undefined when the shapes match, else what differs.
 */
export function compareShape(expected: string, actual: string): string | undefined {
  const want = outputShape(expected);
  const got = outputShape(actual);
  const known = new Set(want);
  const unknown = got.findIndex((line) => !known.has(line));
  if (unknown >= 0) {
    return `line ${unknown + 1} of the output has a shape the guide does not show:\n  ${got[unknown]}\nguide:\n${indent(want)}\noutput:\n${indent(got)}`;
  }
  let position = 0;
  for (const [index, line] of want.entries()) {
    while (position < got.length && got[position] !== line) position++;
    if (position >= got.length) {
      return `line ${index + 1} of the guide's output is missing from the output (or out of order):\n  ${line}\nguide:\n${indent(want)}\noutput:\n${indent(got)}`;
    }
    position++;
  }
  return undefined;
}

function indent(lines: string[]): string {
  return lines.map((line) => `  | ${line}`).join('\n');
}
