// Keys of the Cello single table: a project is the partition `PROJECT#<name>`, its own item has sort key `METADATA`,
// each token `TOKEN#<tokenId>`. Names and ids may hold `#`: parsing strips the prefix and never splits on `#`.
// An empty project name ('' is a valid varchar key) is carried like any other (`PROJECT#` is a valid key; refusing
// it would stop every step on a row no one can use); an empty token id is refused: `TOKEN#` anyone could present.

export const METADATA_SK = 'METADATA';
export const PROJECT_PREFIX = 'PROJECT#';
export const TOKEN_PREFIX = 'TOKEN#';

/** A key that is not of the expected shape, or a name that cannot form one. */
export class KeyError extends Error {
  override name = 'KeyError';
}

// Names are checked at runtime too: a missing attribute read from an item would otherwise become `PROJECT#undefined`.
function checkedName(kind: string, name: unknown, mayBeEmpty: boolean): string {
  if (typeof name !== 'string') throw new KeyError(`${kind} must be a string, got ${typeof name}`);
  if (name === '' && !mayBeEmpty) throw new KeyError(`${kind} must not be empty`);
  return name;
}

function stripPrefix(kind: string, prefix: string, key: unknown, mayBeEmpty: boolean): string {
  if (typeof key !== 'string') throw new KeyError(`${kind} must be a string, got ${typeof key}`);
  if (!key.startsWith(prefix)) {
    throw new KeyError(`${kind} ${JSON.stringify(key)} does not start with ${JSON.stringify(prefix)}`);
  }
  if (key.length === prefix.length && !mayBeEmpty) throw new KeyError(`${kind} ${JSON.stringify(key)} has nothing after the prefix`);
  return key.slice(prefix.length);
}

/** A project's partition key; the empty name (Cello allows it) gives `PROJECT#`. */
export function projectPk(name: string): string {
  return PROJECT_PREFIX + checkedName('project name', name, true);
}

export function tokenSk(tokenId: string): string {
  return TOKEN_PREFIX + checkedName('token id', tokenId, false);
}

/** The project name in a partition key (`PROJECT#a#b` → `a#b`). @throws KeyError if it is not a project key. */
export function parseProjectPk(pk: string): string {
  return stripPrefix('partition key', PROJECT_PREFIX, pk, true);
}

/** The token id in a sort key (`TOKEN#x#y` → `x#y`). @throws KeyError if it is not a token sort key. */
export function parseTokenSk(sk: string): string {
  return stripPrefix('sort key', TOKEN_PREFIX, sk, false);
}

export function isMetadataSk(sk: unknown): boolean {
  return sk === METADATA_SK;
}

/** Whether a sort key is that of a token item (prefix followed by a non-empty id). */
export function isTokenSk(sk: unknown): boolean {
  return typeof sk === 'string' && sk.length > TOKEN_PREFIX.length && sk.startsWith(TOKEN_PREFIX);
}

/** Whether a key is a Cello item's; in a shared table every other item is another application's: no step touches it. */
export function isCelloItemKey(pk: unknown, sk: unknown): boolean {
  return typeof pk === 'string' && pk.startsWith(PROJECT_PREFIX) && (isMetadataSk(sk) || isTokenSk(sk));
}

/** One string per item key, for Map and Set keys: JSON, as concatenation makes (`a#`, `b`) and (`a`, `#b`) collide. */
export function itemKeyString(pk: string, sk: string): string {
  return JSON.stringify([pk, sk]);
}

export function describeItemKey(pk: string, sk: string): string {
  return `[${pk}][${sk}]`;
}
