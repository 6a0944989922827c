// verify --fix, the pure part: what to write for each difference the comparison finds, the conditional request
// that writes it, and what a failed condition means.
//
// PostgreSQL is the truth. A missing item is put, an item whose values differ gets those attributes set, an extra
// item is deleted. The target items are built as the loader builds them (lib/cello/fileItems.ts, from lib/cello), so
// the two steps cannot disagree on what an item holds. Every write is conditional on the item still holding exactly
// what the comparison read (a put: that there is no item), so nothing another writer changed in between is ever
// overwritten or deleted.
import type { AttributeValue } from '@aws-sdk/client-dynamodb';
import { isDeepStrictEqual } from 'node:util';
import type { DynamoItem } from '../dynamodb/batch.ts';
import { CELLO_ATTRIBUTES, PROJECT_ATTRIBUTES, TOKEN_ATTRIBUTES, TOKEN_ID } from '../cello/items.ts';
import { METADATA_SK, PROJECT_PREFIX, TOKEN_PREFIX, isCelloItemKey } from '../cello/keys.ts';
import { buildProjectItem, buildTokenItem, projectNameProblem } from '../cello/fileItems.ts';
import { describeAttributeValue, type PostgresProject, type PostgresToken } from './compare.ts';

/**
 * One write that brings an item in line with PostgreSQL:
 * - put: the item is missing; `target` is what PostgreSQL says it holds;
 * - update: the item differs; `target` is PostgreSQL's, `read` the item as the comparison read it;
 * - delete: the item is not in PostgreSQL; `read` is the item as read;
 * - unfixable: PostgreSQL's row cannot be an item (an empty id, a timestamp out of range...) or the item holds
 *   an attribute a condition cannot compare; `reason` says which. Reported, never written.
 */
export type FixChange = (
  | { kind: 'put'; pk: string; sk: string; target: DynamoItem }
  | { kind: 'update'; pk: string; sk: string; target: DynamoItem; read: DynamoItem }
  | { kind: 'delete'; pk: string; sk: string; read: DynamoItem }
  | { kind: 'unfixable'; pk: string; sk: string; reason: string }
) & { found?: FoundSides };

/**
 * What the comparison read of the item on each side, whatever the change: PostgreSQL's rows when it has the item, the
 * item when the table has it. The rollback (lib/rollback/), which takes the table as the truth, plans from these.
 */
export interface FoundSides {
  postgres?: { project: PostgresProject; token?: PostgresToken | undefined };
  item?: DynamoItem;
}

/** `change` with what the comparison read. */
export function withFound(change: FixChange, found: FoundSides): FixChange {
  return { ...change, found };
}

// ---- what to write ---------------------------------------------------------------------------------------------------

function buildTarget(pk: string, project: PostgresProject, token: PostgresToken | undefined): DynamoItem | string {
  const nameProblem = projectNameProblem(project.name);
  if (nameProblem !== undefined) return nameProblem;
  // PostgreSQL's rows hold the attributes by name: the loader's fields (its timestamps in any form it converts).
  const built = token
    ? buildTokenItem(pk, { ...fileFields(token, TOKEN_ATTRIBUTES), [TOKEN_ID]: token.tokenId })
    : buildProjectItem(pk, fileFields(project, PROJECT_ATTRIBUTES));
  return built.item ? built.item.item : `PostgreSQL's row cannot be stored: ${built.problems.join('; ')}`;
}

/** The fields of the file a row's attributes make (lib/cello/items.ts: one name for the column, field and attribute). */
function fileFields(row: Readonly<Record<string, unknown>>, attributes: readonly string[]): Record<string, unknown> {
  return Object.fromEntries(attributes.map((name) => [name, row[name]]));
}

/** Attribute types a condition cannot compare for equality (DynamoDB's `=` does not take maps or lists). */
function uncomparableAttribute(item: DynamoItem): string | undefined {
  for (const [name, value] of Object.entries(item)) {
    if (value.M !== undefined || value.L !== undefined) return `${name} is ${describeAttributeValue(value)}, which a condition cannot compare`;
  }
  return undefined;
}

/** The change for an item PostgreSQL has and the table lacks. */
export function missingItemChange(pk: string, sk: string, project: PostgresProject, token?: PostgresToken): FixChange {
  const target = buildTarget(pk, project, token);
  return typeof target === 'string' ? { kind: 'unfixable', pk, sk, reason: target } : { kind: 'put', pk, sk, target };
}

/** The change for an item whose values differ from PostgreSQL's. */
export function differingItemChange(pk: string, sk: string, read: DynamoItem, project: PostgresProject, token?: PostgresToken): FixChange {
  const target = buildTarget(pk, project, token);
  if (typeof target === 'string') return { kind: 'unfixable', pk, sk, reason: target };
  const uncomparable = uncomparableAttribute(read);
  return uncomparable !== undefined ? { kind: 'unfixable', pk, sk, reason: uncomparable } : { kind: 'update', pk, sk, target, read };
}

/**
 * The change for an item the table has and PostgreSQL does not. Only a Cello item (a project's METADATA or a token)
 * is deleted: PostgreSQL is the truth about Cello's items, not about another application's in a shared table.
 */
export function extraItemChange(read: DynamoItem): FixChange {
  const pk = read.pk?.S ?? '';
  const sk = read.sk?.S ?? '';
  // The callers pass Cello items only; this is the last line of defence.
  if (!isCelloItemKey(pk, sk)) {
    return {
      kind: 'unfixable',
      pk,
      sk,
      reason: `not a Cello item (a ${PROJECT_PREFIX}<project> key with ${METADATA_SK} or ${TOKEN_PREFIX}<id>), so not PostgreSQL's to delete — delete it yourself if it does not belong in the table`,
    };
  }
  const uncomparable = uncomparableAttribute(read);
  return uncomparable !== undefined ? { kind: 'unfixable', pk, sk, reason: uncomparable } : { kind: 'delete', pk, sk, read };
}

/**
 * The plan with the deletes in partitions of orphan projects (named by tokens in PostgreSQL, absent from its projects
 * table: `orphanPks`) made unfixable. Without --include-orphans those partitions look extra, yet PostgreSQL holds
 * their tokens: deleting them would lose tokens a dump with --include-orphans migrated on purpose.
 */
export function sparingOrphanPartitions(changes: FixChange[], orphanPks: ReadonlySet<string>): FixChange[] {
  if (orphanPks.size === 0) return changes;
  return changes.map((change) =>
    change.kind === 'delete' && orphanPks.has(change.pk)
      ? {
          kind: 'unfixable',
          pk: change.pk,
          sk: change.sk,
          reason:
            'PostgreSQL has tokens of this project without a row in projects (orphans), so it is not extra — run with --include-orphans, as the dump was',
        }
      : change,
  );
}

/** The attributes of `target` (keys aside) whose value the item as read does not hold, in the target's order. */
export function attributesToSet(change: { target: DynamoItem; read: DynamoItem }): string[] {
  return Object.keys(change.target).filter((name) => name !== 'pk' && name !== 'sk' && !isDeepStrictEqual(change.read[name], change.target[name]));
}

// ---- the conditional requests ----------------------------------------------------------------------------------------

export interface ConditionalWrite {
  Key: DynamoItem;
  ConditionExpression: string;
  ExpressionAttributeNames: Record<string, string>;
  ExpressionAttributeValues?: Record<string, AttributeValue>;
  /** UpdateItem only. */
  UpdateExpression?: string;
  /** PutItem only. */
  Item?: DynamoItem;
}

/**
 * The request that applies `change` only if the item still holds exactly what was read: every attribute of the
 * item as read equal to its value (`#aN = :rN`), and each attribute the update sets, or for a delete each Cello
 * attribute, that was absent still absent.
 * A put asks that no item exist.
 */
export function conditionalWrite(change: Exclude<FixChange, { kind: 'unfixable' }>): ConditionalWrite {
  const Key = { pk: { S: change.pk }, sk: { S: change.sk } };
  if (change.kind === 'put') {
    return { Key, Item: change.target, ConditionExpression: 'attribute_not_exists(#pk)', ExpressionAttributeNames: { '#pk': 'pk' } };
  }
  const names: Record<string, string> = { '#pk': 'pk' };
  const values: Record<string, AttributeValue> = {};
  const conditions = ['attribute_exists(#pk)'];
  const nameOf = new Map<string, string>();
  const placeholder = (attribute: string): string => {
    let name = nameOf.get(attribute);
    if (name === undefined) {
      name = `#a${nameOf.size}`;
      nameOf.set(attribute, name);
      names[name] = attribute;
    }
    return name;
  };
  Object.entries(change.read).forEach(([attribute, value], index) => {
    if (attribute === 'pk' || attribute === 'sk') return;
    values[`:r${index}`] = value;
    conditions.push(`${placeholder(attribute)} = :r${index}`);
  });
  if (change.kind === 'delete') {
    // An attribute that appeared since the read changed the item as much as one rewritten. A condition can only name
    // the attributes it knows: Cello's.
    for (const attribute of CELLO_ATTRIBUTES) {
      if (change.read[attribute] === undefined) conditions.push(`attribute_not_exists(${placeholder(attribute)})`);
    }
  }
  const write: ConditionalWrite = { Key, ConditionExpression: '', ExpressionAttributeNames: names };
  if (change.kind === 'update') {
    const assignments = attributesToSet(change).map((attribute, index) => {
      const name = placeholder(attribute);
      if (change.read[attribute] === undefined) conditions.push(`attribute_not_exists(${name})`);
      values[`:t${index}`] = change.target[attribute]!;
      return `${name} = :t${index}`;
    });
    write.UpdateExpression = `SET ${assignments.join(', ')}`;
  }
  write.ConditionExpression = conditions.join(' AND ');
  if (Object.keys(values).length > 0) write.ExpressionAttributeValues = values;
  return write;
}

/** Whether the item as it is now (`current`, undefined when absent) is what the change meant to leave. */
export function holdsTarget(change: FixChange, current: DynamoItem | undefined): boolean {
  switch (change.kind) {
    case 'put':
    case 'update':
      return current !== undefined && Object.keys(change.target).every((name) => isDeepStrictEqual(current[name], change.target[name]));
    case 'delete':
      return current === undefined;
    case 'unfixable':
      return false;
  }
}
