// verify --fix, the pure part: the write each difference needs, and its conditional request. Targets are built as the
// loader builds them (lib/cello/fileItems.ts), so the two steps cannot disagree. Every write is conditional on the item
// still holding exactly what the comparison read (a put: none), so nothing another writer changed is overwritten.
import type { AttributeValue } from '@aws-sdk/client-dynamodb';
import { isDeepStrictEqual } from 'node:util';
import type { DynamoItem } from '../dynamodb/batch.ts';
import { CELLO_ATTRIBUTES, PROJECT_ATTRIBUTES, TOKEN_ATTRIBUTES, TOKEN_ID } from '../cello/items.ts';
import { METADATA_SK, PROJECT_PREFIX, TOKEN_PREFIX, isCelloItemKey } from '../cello/keys.ts';
import { buildProjectItem, buildTokenItem, projectNameProblem } from '../cello/fileItems.ts';
import { describeAttributeValue, type PostgresProject, type PostgresToken } from './compare.ts';

/**
 * One write that brings an item in line with PostgreSQL: `target` is what PostgreSQL says it holds, `read` the item as
 * read. Unfixable (never written): the row cannot be an item, or the item is not its to delete or to compare.
 */
export type FixChange = (
  | { kind: 'put'; pk: string; sk: string; target: DynamoItem }
  | { kind: 'update'; pk: string; sk: string; target: DynamoItem; read: DynamoItem }
  | { kind: 'delete'; pk: string; sk: string; read: DynamoItem }
  | { kind: 'unfixable'; pk: string; sk: string; reason: string }
) & { found?: FoundSides };

/** What the comparison read on each side, whatever the change: the rollback (the table as the truth) plans from it. */
export type FoundSides = { postgres?: PostgresRows; item?: DynamoItem };

type PostgresRows = { project: PostgresProject; token?: PostgresToken | undefined };

/** The change for the item [pk][sk]: `postgres` its rows (none: PostgreSQL lacks it), `read` the item (none: missing). */
export function planChange(pk: string, sk: string, postgres: PostgresRows | undefined, read: DynamoItem | undefined): FixChange {
  const found = { ...(postgres && { postgres }), ...(read && { item: read }) };
  const target = postgres && buildTarget(pk, postgres.project, postgres.token);
  if (typeof target === 'string') return { kind: 'unfixable', pk, sk, reason: target, found };
  const reason = read && (notCelloItem(pk, sk) ?? uncomparableAttribute(read));
  if (reason !== undefined) return { kind: 'unfixable', pk, sk, reason, found };
  if (read === undefined) return { kind: 'put', pk, sk, target: target!, found };
  return target === undefined ? { kind: 'delete', pk, sk, read, found } : { kind: 'update', pk, sk, target, read, found };
}

function buildTarget(pk: string, project: PostgresProject, token: PostgresToken | undefined): DynamoItem | string {
  const nameProblem = projectNameProblem(project.name);
  if (nameProblem !== undefined) return nameProblem;
  // One name serves the column, the file's field and the attribute: a row's attributes are the loader's fields.
  const fields = (row: object, names: readonly string[]) => Object.fromEntries(names.map((name) => [name, (row as Record<string, unknown>)[name]]));
  const built = token
    ? buildTokenItem(pk, { ...fields(token, TOKEN_ATTRIBUTES), [TOKEN_ID]: token.tokenId })
    : buildProjectItem(pk, fields(project, PROJECT_ATTRIBUTES));
  return built.item ? built.item.item : `PostgreSQL's row cannot be stored: ${built.problems.join('; ')}`;
}

// PostgreSQL is the truth about Cello's items, not another application's in a shared table. The callers pass Cello
// items only: this is the last line of defence.
function notCelloItem(pk: string, sk: string): string | undefined {
  if (isCelloItemKey(pk, sk)) return undefined;
  return `not a Cello item (a ${PROJECT_PREFIX}<project> key with ${METADATA_SK} or ${TOKEN_PREFIX}<id>), so not PostgreSQL's to delete — delete it yourself if it does not belong in the table`;
}

/** Attribute types a condition cannot compare for equality (DynamoDB's `=` does not take maps or lists). */
function uncomparableAttribute(item: DynamoItem): string | undefined {
  const [name, value] = Object.entries(item).find(([, value]) => value.M !== undefined || value.L !== undefined) ?? [];
  return value && `${name} is ${describeAttributeValue(value)}, which a condition cannot compare`;
}

/** Deletes in orphan projects' partitions made unfixable: without --include-orphans they look extra, yet PostgreSQL holds their tokens. */
export function sparingOrphanPartitions(changes: FixChange[], orphanPks: ReadonlySet<string>): FixChange[] {
  const reason =
    'PostgreSQL has tokens of this project without a row in projects (orphans), so it is not extra — run with --include-orphans, as the dump was';
  return changes.map(
    (change): FixChange =>
      change.kind === 'delete' && orphanPks.has(change.pk) ? { kind: 'unfixable', pk: change.pk, sk: change.sk, reason } : change,
  );
}

/** The attributes of `target` (keys aside) whose value the item as read does not hold, in the target's order. */
export function attributesToSet(change: { target: DynamoItem; read: DynamoItem }): string[] {
  return Object.keys(change.target).filter((name) => name !== 'pk' && name !== 'sk' && !isDeepStrictEqual(change.read[name], change.target[name]));
}

export interface ConditionalWrite {
  Key: DynamoItem;
  ConditionExpression: string;
  ExpressionAttributeNames: Record<string, string>;
  ExpressionAttributeValues?: Record<string, AttributeValue>;
  UpdateExpression?: string;
  Item?: DynamoItem;
}

/**
 * The request that applies `change` only if the item still holds exactly what was read: each attribute read equal to
 * its value (`#aN = :rN`), and each the update sets, or for a delete each Cello attribute, that was absent still absent.
 */
export function conditionalWrite(change: Exclude<FixChange, { kind: 'unfixable' }>): ConditionalWrite {
  const Key = { pk: { S: change.pk }, sk: { S: change.sk } };
  if (change.kind === 'put') {
    return { Key, Item: change.target, ConditionExpression: 'attribute_not_exists(#pk)', ExpressionAttributeNames: { '#pk': 'pk' } };
  }
  const write: ConditionalWrite = { Key, ConditionExpression: '', ExpressionAttributeNames: { '#pk': 'pk' } };
  const names = new Map<string, string>();
  const placeholder = (attribute: string): string => {
    if (!names.has(attribute)) names.set(attribute, `#a${names.size}`);
    return names.get(attribute)!;
  };
  const values: Record<string, AttributeValue> = {};
  const conditions = ['attribute_exists(#pk)'];
  Object.entries(change.read).forEach(([attribute, value], index) => {
    if (attribute === 'pk' || attribute === 'sk') return;
    values[`:r${index}`] = value;
    conditions.push(`${placeholder(attribute)} = :r${index}`);
  });
  // An attribute that appeared since the read changed the item as much as one rewritten; a condition can name Cello's.
  const stillAbsent = (attribute: string) => {
    if (change.read[attribute] === undefined) conditions.push(`attribute_not_exists(${placeholder(attribute)})`);
  };
  if (change.kind === 'delete') for (const attribute of CELLO_ATTRIBUTES) stillAbsent(attribute);
  else {
    const assignments = attributesToSet(change).map((attribute, index) => {
      stillAbsent(attribute);
      values[`:t${index}`] = change.target[attribute]!;
      return `${placeholder(attribute)} = :t${index}`;
    });
    write.UpdateExpression = `SET ${assignments.join(', ')}`;
  }
  write.ConditionExpression = conditions.join(' AND ');
  for (const [attribute, name] of names) write.ExpressionAttributeNames[name] = attribute;
  if (Object.keys(values).length > 0) write.ExpressionAttributeValues = values;
  return write;
}

export function holdsTarget(change: FixChange, current: DynamoItem | undefined): boolean {
  if (change.kind === 'delete') return current === undefined;
  if (change.kind === 'unfixable') return false;
  return current !== undefined && Object.keys(change.target).every((name) => isDeepStrictEqual(current[name], change.target[name]));
}
