// The table stores one canonical form, `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ` (UTC, sorts in instant order). PostgreSQL keeps
// microseconds, the date object milliseconds, floats lose digits: fields are read digit by digit, the offset subtracted in
// integers, the fraction copied as text. Canonical input (millions of rows) takes a fast path with no allocation.
import { quoteValue } from './quote.ts';

/** An example of the canonical form, quoted in every error message. */
const EXAMPLE = '2022-02-02T18:01:49.345261000Z';

/** A value that is not a timestamp, or one that cannot be stored exactly as a canonical timestamp. */
export class TimestampError extends Error {
  override name = 'TimestampError';
  /** `reason` when there is more to say than "not in any timestamp form". */
  constructor(
    readonly value: unknown,
    readonly reason?: string,
  ) {
    super(`${quoteValue(value)} is not a timestamp${reason === undefined ? '' : `: ${reason}`} (expected e.g. ${EXAMPLE})`);
  }
}

// Canonical shape only; field ranges are checked separately (a regex cannot know that April has 30 days).
const CANONICAL_SHAPE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{9}Z$/;

// Everything accepted: RFC 3339 and the ISO 8601 forms with a zone, extended (`2021-05-11T17:17:41Z`) or basic
// (`20210511T171741Z`), PostgreSQL's output among them. Each part keeps one separator style (the backreferences):
// `2022-0202` and `+0530:00` are refused. Groups: 1 year, 2 date separator, 3 month, 4 day, 5 hour, 6 time separator,
// 7 minute, 8 second, 9 fraction (of the second only: a fraction of a minute or hour is not exact in nanoseconds for
// every value), 10 `Z`, 11 offset sign, 12 offset hours, 13 offset separator, 14 offset minutes, 15 offset seconds.
// Minutes and seconds may be left out (ISO 8601's reduced precision: `T17:17Z` is 17:17:00). No zone at all still
// matches, so that case gets its own message. `\d` without the `u` flag is ASCII digits only.
const TIMESTAMP =
  /^(\d{4})(-?)(\d{2})\2(\d{2})[Tt ](\d{2})(?:(:?)(\d{2})(?:\6(\d{2})(?:[.,](\d+))?)?)?(?:([Zz])|([+-])(\d{2})(?:(:?)(\d{2})(?:\13(\d{2}))?)?)?$/;

const FRACTION_DIGITS = 9;
const FRACTION_PADDING = '000000000';

/** PostgreSQL's limit (TZDISP): every offset it could have written is accepted, and nothing wilder. */
const OFFSET_LIMIT_SECONDS = 16 * 3600;
const SECONDS_PER_DAY = 86_400;

// Two and four digit fields at fixed positions. The regex has already checked these are ASCII digits.
function digits2(text: string, at: number): number {
  return (text.charCodeAt(at) - 48) * 10 + (text.charCodeAt(at + 1) - 48);
}

function digits4(text: string, at: number): number {
  return digits2(text, at) * 100 + digits2(text, at + 2);
}

function isLeapYear(year: number): boolean {
  return year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0);
}

function daysInMonth(year: number, month: number): number {
  if (month === 2) return isLeapYear(year) ? 29 : 28;
  return month === 4 || month === 6 || month === 9 || month === 11 ? 30 : 31;
}

/** Why the date and time fields are out of range, or undefined when they are valid. */
function fieldProblem(year: number, month: number, day: number, hour: number, minute: number, second: number) {
  if (year < 1) return 'year 0000 does not exist';
  if (month < 1 || month > 12) return `month ${month} is out of range`;
  if (day < 1 || day > daysInMonth(year, month)) {
    return month === 2 && day === 29 ? `${year} is not a leap year` : `day ${day} is out of range for month ${month}`;
  }
  if (hour > 23) return `hour ${hour} is out of range`;
  if (minute > 59) return `minute ${minute} is out of range`;
  if (second === 60) return 'leap seconds (second 60) cannot be stored';
  if (second > 59) return `second ${second} is out of range`;
  return undefined;
}

/** Whether `text` is already exactly in the canonical form, with valid fields. Allocation-free: the shape, then the field ranges. */
export function isCanonicalTimestamp(text: unknown): boolean {
  return (
    typeof text === 'string' &&
    text.length === 30 &&
    CANONICAL_SHAPE.test(text) &&
    fieldProblem(digits4(text, 0), digits2(text, 5), digits2(text, 8), digits2(text, 11), digits2(text, 14), digits2(text, 17)) === undefined
  );
}

function pad2(value: number): string {
  return String(value).padStart(2, '0');
}

/**
 * Why a value in no accepted form was refused, when there is more to say. A bare number on purpose: `1620363746` is
 * 2021-05-07 in seconds, 1970-01-19 in milliseconds; a wrong guess is a changed value (verify --fix writes PostgreSQL's).
 */
function rejectionReason(text: string): string | undefined {
  if (/^[+-]?infinity$/i.test(text)) return 'infinite timestamps cannot be stored';
  if (/ BC$/i.test(text)) return 'dates before the common era (BC) cannot be stored';
  if (/^[1-9]\d{4,}-\d{2}-\d{2}[Tt ]/.test(text)) return 'years after 9999 cannot be stored';
  if (text === '') return 'the value is empty';
  if (/^[+-]?\d+(?:\.\d+)?$/.test(text)) return EPOCH_REASON;
  return undefined;
}

/** Why a number is not converted, for this module's messages and the repair's. */
export const EPOCH_REASON = 'a bare number does not say its unit (epoch seconds? milliseconds?), so the instant is ambiguous';

/** Fraction digits beyond the ninth, when they are all zeros, change nothing; others would be lost. */
function nanosecondFraction(text: string, fraction: string | undefined): string {
  if (fraction === undefined) return FRACTION_PADDING;
  if (fraction.length <= FRACTION_DIGITS) return fraction + FRACTION_PADDING.slice(fraction.length);
  if (!/^0+$/.test(fraction.slice(FRACTION_DIGITS))) {
    throw new TimestampError(text, `${fraction.length} fraction digits cannot be stored exactly (nanoseconds at most: 9 digits)`);
  }
  return fraction.slice(0, FRACTION_DIGITS);
}

/** A two-digit field the regex may have left out (reduced precision): 0 then. */
function optionalDigits2(text: string | undefined): number {
  return text === undefined ? 0 : digits2(text, 0);
}

/** The offset east of UTC in seconds (0 for `Z`) of TIMESTAMP's groups 11–15. @throws TimestampError for one PostgreSQL would not write. */
function zoneOffsetSeconds(text: string, match: RegExpExecArray): number {
  const [sign, hours, separator, minutes, seconds] = match.slice(11, 16);
  if (sign === undefined) return 0;
  // +HHMMSS is in neither ISO 8601-1 nor RFC 3339; Python's %z writes it. Only `+HH:MM:SS` (PostgreSQL's) says seconds for sure.
  if (seconds !== undefined && separator === '') {
    throw new TimestampError(text, 'a six-digit offset (+HHMMSS) is ambiguous: PostgreSQL reads +001200 as 12 hours, others as 12 minutes');
  }
  const om = optionalDigits2(minutes);
  const os = optionalDigits2(seconds);
  if (om > 59 || os > 59) throw new TimestampError(text, 'the offset is out of range');
  const offset = digits2(hours!, 0) * 3600 + om * 60 + os;
  if (offset >= OFFSET_LIMIT_SECONDS) throw new TimestampError(text, 'the offset is beyond ±15:59');
  return sign === '-' ? -offset : offset;
}

/** The date one day after (`step` 1) or before (`step` -1), carrying into month and year by hand. */
function stepDay(year: number, month: number, day: number, step: 1 | -1): [number, number, number] {
  if (step === 1) {
    if (day < daysInMonth(year, month)) return [year, month, day + 1];
    return month < 12 ? [year, month + 1, 1] : [year + 1, 1, 1];
  }
  if (day > 1) return [year, month, day - 1];
  return month > 1 ? [year, month - 1, daysInMonth(year, month - 1)] : [year - 1, 12, 31];
}

/**
 * The canonical UTC form of the instant `text` denotes (any form TIMESTAMP accepts; past nine fraction digits only
 * zeros). @throws TimestampError for anything that does not name one instant or cannot be stored exactly.
 */
export function toCanonicalTimestamp(text: string): string {
  if (typeof text !== 'string') throw new TimestampError(text, `expected a string, got ${typeof text}`);
  if (isCanonicalTimestamp(text)) return text;

  const match = TIMESTAMP.exec(text);
  if (match === null) throw new TimestampError(text, rejectionReason(text));
  const [, yearText, , monthText, dayText, hourText, , minuteText, secondText, fraction, zulu, sign] = match;

  const nanos = nanosecondFraction(text, fraction);
  if (zulu === undefined && sign === undefined) {
    throw new TimestampError(text, 'the time zone is missing, so the instant is ambiguous');
  }

  let year = digits4(yearText!, 0);
  let month = digits2(monthText!, 0);
  let day = digits2(dayText!, 0);
  const hour = digits2(hourText!, 0);
  const minute = optionalDigits2(minuteText);
  const second = optionalDigits2(secondText);
  const problem = fieldProblem(year, month, day, hour, minute, second);
  if (problem !== undefined) throw new TimestampError(text, problem);

  // An offset is under a day, so the date moves by one day at most.
  let secondOfDay = hour * 3600 + minute * 60 + second - zoneOffsetSeconds(text, match);
  const dayStep = secondOfDay < 0 ? -1 : secondOfDay >= SECONDS_PER_DAY ? 1 : 0;
  if (dayStep !== 0) {
    [year, month, day] = stepDay(year, month, day, dayStep);
    secondOfDay -= dayStep * SECONDS_PER_DAY;
  }
  if (year < 1 || year > 9999) throw new TimestampError(text, 'the instant in UTC is outside years 0001–9999');

  const utcHour = (secondOfDay / 3600) | 0;
  const utcMinute = ((secondOfDay % 3600) / 60) | 0;
  const utcSecond = secondOfDay % 60;
  return `${String(year).padStart(4, '0')}-${pad2(month)}-${pad2(day)}T${pad2(utcHour)}:${pad2(utcMinute)}:${pad2(utcSecond)}.${nanos}Z`;
}

/** The canonical form of a timestamp in any form the repair converts; undefined for what is no timestamp. */
export function canonicalOrUndefined(text: string | null | undefined): string | undefined {
  if (typeof text !== 'string') return undefined;
  try {
    return toCanonicalTimestamp(text);
  } catch (error) {
    if (error instanceof TimestampError) return undefined;
    throw error;
  }
}

/** Whether both values are timestamps denoting the same instant; false if either is not a timestamp. */
export function timestampsEqualAsInstants(a: string, b: string): boolean {
  const canonical = canonicalOrUndefined(a);
  return canonical !== undefined && canonical === canonicalOrUndefined(b);
}
