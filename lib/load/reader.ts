import { ExitCode, UserError } from '../cli/errors.ts';
import { readJsonObjectOfObjects, type ObjectEvent } from '../json/stream.ts';
import { PROJECT_PREFIX, projectPk } from '../cello/keys.ts';
import { describeType } from '../cello/codecs.ts';
import { PROJECT_ATTRIBUTES, TOKENS_FIELD, isAttributeOf, listNames } from '../cello/items.ts';
import { buildProjectItem, buildTokenItem, projectNameProblem, type LoadItem } from '../cello/fileItems.ts';
import { quoteValue } from '../cello/quote.ts';

const PROJECT_FIELDS = listNames([...PROJECT_ATTRIBUTES, TOKENS_FIELD]);

/** Where an item sits in the file: the project entry's ordinal and the token index (-1 for the project item). */
export function locationKey(entry: number, token: number): string {
  return `${entry}:${token}`;
}

interface ReaderCallbacks {
  /** A valid item. `token` is the index in the project's tokens array, -1 for the project's METADATA item. */
  item(item: LoadItem, token: number): void;
  /** A full line without the `error: ` prefix. */
  problem(message: string): void;
  entryEnd?(entry: number): void;
}

/**
 * The JSON stream's events → items and problems. One reader serves every pass, so the load builds exactly the items
 * the check accepted. Unknown fields are refused: data the table would silently lose, for the operator to decide.
 */
export class MigrationFileReader {
  /** Project entries begun; the current one's ordinal is entries - 1. */
  entries = 0;
  items = 0;
  private entryName = '';
  /** The line of the current entry's key, for messages that must tell two entries of one project apart. */
  line = 0;
  private pk: string | undefined;
  private projectValues: Record<string, unknown> = {};
  private hasTokens = false;
  private fieldsSeen = new Set<string>();

  constructor(
    readonly file: string,
    private readonly callbacks: ReaderCallbacks,
  ) {}

  /** `<file>: project "<name>"` — the start of every message about the current entry. */
  where(name = this.entryName): string {
    return `${this.file}: project ${quoteValue(name)}`;
  }

  accept(event: ObjectEvent): void {
    switch (event.kind) {
      case 'arrayElement':
        if (event.field === TOKENS_FIELD) this.token(event.index, event.value);
        return;
      case 'entryStart':
        this.startEntry(event.name, event.line);
        return;
      case 'field':
        this.field(event.field, event.value);
        return;
      case 'arrayEnd':
        this.arrayEnd(event.field);
        return;
      case 'entryEnd':
        this.endEntry();
        return;
      case 'entryNotObject':
        this.entries++;
        this.callbacks.problem(`${this.where(event.name)}: must be an object with ${PROJECT_FIELDS}, got ${describeType(event.value)}`);
        return;
    }
  }

  private startEntry(name: string, line: number): void {
    this.entries++;
    this.entryName = name;
    this.line = line;
    this.projectValues = {};
    this.hasTokens = false;
    this.fieldsSeen.clear();
    const problem = projectNameProblem(name);
    if (problem === undefined) this.pk = projectPk(name);
    else {
      this.pk = undefined;
      this.callbacks.problem(`${this.where()} (line ${line}): ${problem}`);
    }
  }

  /** False (after the problem) if the field was already seen in this entry. */
  private firstTime(field: string): boolean {
    if (!this.fieldsSeen.has(field)) {
      this.fieldsSeen.add(field);
      return true;
    }
    this.callbacks.problem(`${this.where()}: field ${quoteValue(field)} appears twice`);
    return false;
  }

  private field(field: string, value: unknown): void {
    if (!this.firstTime(field)) return;
    if (isAttributeOf('project', field)) {
      this.projectValues[field] = value;
    } else if (field === TOKENS_FIELD) {
      this.hasTokens = true;
      this.callbacks.problem(`${this.where()}: ${TOKENS_FIELD} must be an array, got ${describeType(value)}`);
    } else {
      this.unknownField(field);
    }
  }

  private arrayEnd(field: string): void {
    if (!this.firstTime(field)) return;
    if (field === TOKENS_FIELD) this.hasTokens = true;
    else if (isAttributeOf('project', field)) this.projectValues[field] = [];
    else this.unknownField(field);
  }

  private unknownField(field: string): void {
    this.callbacks.problem(`${this.where()}: unknown field ${quoteValue(field)} (a project has ${PROJECT_FIELDS})`);
  }

  private token(index: number, value: unknown): void {
    // A second "tokens" array is reported at its end; its elements are not items.
    if (this.fieldsSeen.has(TOKENS_FIELD)) return;
    const result = buildTokenItem(this.pk ?? `${PROJECT_PREFIX}?`, value, this.entries - 1);
    if (result.item === undefined) {
      for (const problem of result.problems) this.callbacks.problem(`${this.where()}, ${TOKENS_FIELD}[${index}]: ${problem}`);
    } else if (this.pk !== undefined) {
      this.items++;
      this.callbacks.item(result.item, index);
    }
  }

  private endEntry(): void {
    const entry = this.entries - 1;
    const result = buildProjectItem(this.pk ?? `${PROJECT_PREFIX}?`, this.projectValues, entry);
    for (const problem of result.problems ?? []) this.callbacks.problem(`${this.where()}: ${problem}`);
    if (!this.hasTokens) this.callbacks.problem(`${this.where()}: ${TOKENS_FIELD} is missing (use [] for a project without tokens)`);
    if (result.item !== undefined && this.pk !== undefined) {
      this.items++;
      this.callbacks.item(result.item, -1);
    }
    this.callbacks.entryEnd?.(entry);
  }
}

/** @throws JsonInputError (not JSON, truncated, unreadable) */
export async function readFile(path: string, reader: MigrationFileReader, shouldStop: () => boolean): Promise<void> {
  for await (const event of readJsonObjectOfObjects(path)) {
    reader.accept(event);
    if (shouldStop()) throw new UserError('stopped before anything was written', ExitCode.interrupted);
  }
}
