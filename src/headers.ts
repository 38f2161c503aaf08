/**
 * Reading a throttle delay ("come back in N ms") from an HTTP response.
 *
 * Zero runtime dependencies. Every function here is pure apart from the
 * `Date.now()` default for {@link RetryDelayOptions.nowMs}.
 *
 * @module
 */

/**
 * Anything we can read headers from: WHATWG `Headers` (fetch), Node's
 * IncomingHttpHeaders-like records (values string | string[] | number |
 * undefined), or a Map. Header names are case-insensitive.
 *
 * Lookup contract:
 * - A `Map` is searched case-insensitively over its string keys (all keys that
 *   match, in insertion order).
 * - Any other object with a `get()` method (e.g. WHATWG `Headers`) is assumed to
 *   be case-insensitive itself and is queried with the lower-case name.
 * - A plain record is searched case-insensitively over its own enumerable keys
 *   (all keys that match, in key order).
 * Values may be a string, an array of strings, or a number; `null`/`undefined`
 * mean "absent".
 */
export type HeaderSource =
  | { get(name: string): string | null | undefined }
  | Readonly<Record<string, string | readonly string[] | number | undefined>>;

/** Options for {@link retryDelayFromHeaders}. */
export interface RetryDelayOptions {
  /**
   * Wall-clock "now" in ms since the Unix epoch, used for HTTP-dates and
   * timestamps. Default Date.now(). Must be finite (else throw RangeError
   * naming `nowMs`).
   */
  nowMs?: number;
  /**
   * Upper clamp for any delay read from headers, ms. Default 15 * 60_000
   * (15 min). Must be finite and >= 0 (else throw RangeError naming `maxMs`).
   */
  maxMs?: number;
}

/** Default {@link RetryDelayOptions.maxMs}: 15 minutes. */
const DEFAULT_MAX_MS = 15 * 60_000;

/**
 * 429 and 503 are throttles.
 *
 * Returns true exactly for HTTP 429 (Too Many Requests) and 503 (Service
 * Unavailable), the two statuses whose `Retry-After` means "slow down";
 * false for everything else (including other 5xx).
 */
export function isThrottleStatus(status: number): boolean {
  return status === 429 || status === 503;
}

// ---------------------------------------------------------------------------
// Numbers and durations
// ---------------------------------------------------------------------------

/** A non-negative decimal: "5", "1.5", ".5", "5." — no sign, no exponent. */
const DECIMAL_RE = /^(?:\d+(?:\.\d*)?|\.\d+)$/;

/** Trim HTTP optional whitespace (and any other ASCII/Unicode whitespace). */
function trim(text: string): string {
  return text.trim();
}

/**
 * `decimal * 10^exp` computed by the string parser (`"1.005e3"`), which is
 * correctly rounded, instead of `1.005 * 1000` (= 1004.9999999999999).
 * Returns undefined if `decimal` is not a non-negative decimal or the result is
 * not finite.
 */
function scaleDecimal(decimal: string, exp: number): number | undefined {
  if (!DECIMAL_RE.test(decimal)) return undefined;
  const value = Number(`${decimal}e${exp}`);
  return Number.isFinite(value) && value >= 0 ? value : undefined;
}

/** Milliseconds per unit, as a power of ten plus an integer multiplier. */
const DURATION_UNITS: Readonly<Record<string, { exp: number; mul: number }>> = {
  ns: { exp: -6, mul: 1 },
  us: { exp: -3, mul: 1 },
  '\u00b5s': { exp: -3, mul: 1 }, // µ MICRO SIGN (what Go emits)
  '\u03bcs': { exp: -3, mul: 1 }, // μ GREEK SMALL LETTER MU (also accepted by Go)
  ms: { exp: 0, mul: 1 },
  s: { exp: 3, mul: 1 },
  m: { exp: 3, mul: 60 },
  h: { exp: 3, mul: 3600 },
};

/** One `<number><unit>` segment of a Go duration. */
const DURATION_SEGMENT_RE = /(\d+(?:\.\d*)?|\.\d+)(ns|us|\u00b5s|\u03bcs|ms|s|m|h)/y;

/**
 * Parses a Go/OpenAI-style duration such as "1s", "6m0s", "20ms", "1h2m3.5s",
 * "0.5s", "250us"/"250µs", "100ns" into milliseconds (fractional allowed).
 * Returns undefined for anything malformed, empty, or negative.
 *
 * Grammar (Go's `time.ParseDuration`, minus signs): one or more segments
 * `<decimal><unit>` with no separators, where decimal is `\d+`, `\d+.\d*` or
 * `.\d+` and unit is one of `ns`, `us`, `µs` (U+00B5), `μs` (U+03BC), `ms`,
 * `s`, `m`, `h`; segments are summed in any order ("1s1h" is allowed, as in
 * Go). The bare string "0" is 0 (as in Go); any other bare number has no unit
 * and is malformed. Surrounding whitespace is ignored. Any sign (`-` or `+`)
 * makes the input malformed. A result that overflows to Infinity is undefined.
 */
export function parseDurationMs(text: string): number | undefined {
  if (typeof text !== 'string') return undefined;
  const s = trim(text);
  if (s === '0') return 0;
  if (s === '') return undefined;
  let total = 0;
  let pos = 0;
  while (pos < s.length) {
    DURATION_SEGMENT_RE.lastIndex = pos;
    const m = DURATION_SEGMENT_RE.exec(s);
    if (m === null) return undefined;
    const [whole, num, unitName] = m;
    const unit = unitName === undefined ? undefined : DURATION_UNITS[unitName];
    if (num === undefined || unit === undefined) return undefined;
    const scaled = scaleDecimal(num, unit.exp);
    if (scaled === undefined) return undefined;
    total += scaled * unit.mul;
    pos += whole.length;
  }
  return Number.isFinite(total) ? total : undefined;
}

// ---------------------------------------------------------------------------
// Dates
// ---------------------------------------------------------------------------

function isLeapYear(y: number): boolean {
  return y % 4 === 0 && (y % 100 !== 0 || y % 400 === 0);
}

function daysInMonth(y: number, month1: number): number {
  if (month1 === 2) return isLeapYear(y) ? 29 : 28;
  return month1 === 4 || month1 === 6 || month1 === 9 || month1 === 11 ? 30 : 31;
}

/**
 * UTC epoch ms for validated calendar fields, or undefined if any field is out
 * of range. Avoids Date.UTC's "years 0-99 mean 1900-1999" quirk. Second 60 (a
 * leap second) is accepted and rolls into the next minute.
 */
function utcMs(
  year: number,
  month1: number,
  day: number,
  hour: number,
  minute: number,
  second: number,
): number | undefined {
  if (month1 < 1 || month1 > 12) return undefined;
  if (day < 1 || day > daysInMonth(year, month1)) return undefined;
  if (hour > 23 || minute > 59 || second > 60) return undefined;
  const d = new Date(0);
  d.setUTCFullYear(year, month1 - 1, day);
  d.setUTCHours(hour, minute, second, 0);
  const t = d.getTime();
  return Number.isFinite(t) ? t : undefined;
}

const MONTHS: Readonly<Record<string, number>> = {
  jan: 1, feb: 2, mar: 3, apr: 4, may: 5, jun: 6,
  jul: 7, aug: 8, sep: 9, oct: 10, nov: 11, dec: 12,
};

const DAY_NAME = '(?:mon|tue|wed|thu|fri|sat|sun|monday|tuesday|wednesday|thursday|friday|saturday|sunday)';
const MONTH_NAME = '(jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)';
const TIME = '(\\d{2}):(\\d{2}):(\\d{2})';
const ZONE = '(?:gmt|utc)';

/** IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT". */
const IMF_FIXDATE_RE = new RegExp(
  `^${DAY_NAME},\\s*(\\d{1,2})\\s+${MONTH_NAME}\\s+(\\d{4})\\s+${TIME}\\s+${ZONE}$`, 'i');
/** Obsolete RFC 850: "Sunday, 06-Nov-94 08:49:37 GMT". */
const RFC850_RE = new RegExp(
  `^${DAY_NAME},\\s*(\\d{1,2})-${MONTH_NAME}-(\\d{2})\\s+${TIME}\\s+${ZONE}$`, 'i');
/** Obsolete ANSI C asctime(): "Sun Nov  6 08:49:37 1994". */
const ASCTIME_RE = new RegExp(
  `^${DAY_NAME}\\s+${MONTH_NAME}\\s+(\\d{1,2})\\s+${TIME}\\s+(\\d{4})$`, 'i');

/**
 * Strict RFC 9110 §5.6.7 HTTP-date parser → epoch ms, or undefined.
 *
 * Accepts the three formats recipients must accept (IMF-fixdate, RFC 850,
 * asctime), case-insensitively and with flexible whitespace; the zone must be
 * "GMT" (or "UTC"). The day name is required but not cross-checked against the
 * date. A two-digit RFC 850 year more than 50 years after `nowMs` is read as
 * the most recent past year with those digits (RFC 9110). Anything else —
 * including pure numbers, ISO 8601 and whatever Date.parse would guess at — is
 * rejected.
 */
function parseHttpDate(text: string, nowMs: number): number | undefined {
  const s = trim(text);
  let m = IMF_FIXDATE_RE.exec(s);
  if (m !== null) {
    const [, day, mon, year, hh, mm, ss] = m;
    return fromFields(year, mon, day, hh, mm, ss);
  }
  m = RFC850_RE.exec(s);
  if (m !== null) {
    const [, day, mon, yy, hh, mm, ss] = m;
    const nowYear = new Date(nowMs).getUTCFullYear();
    let year = Math.floor(nowYear / 100) * 100 + Number(yy);
    if (year > nowYear + 50) year -= 100;
    return fromFields(String(year), mon, day, hh, mm, ss);
  }
  m = ASCTIME_RE.exec(s);
  if (m !== null) {
    const [, mon, day, hh, mm, ss, year] = m;
    return fromFields(year, mon, day, hh, mm, ss);
  }
  return undefined;
}

function fromFields(
  year: string | undefined,
  mon: string | undefined,
  day: string | undefined,
  hh: string | undefined,
  mm: string | undefined,
  ss: string | undefined,
): number | undefined {
  if (year === undefined || mon === undefined || day === undefined) return undefined;
  if (hh === undefined || mm === undefined || ss === undefined) return undefined;
  const month1 = MONTHS[mon.toLowerCase()];
  if (month1 === undefined) return undefined;
  return utcMs(Number(year), month1, Number(day), Number(hh), Number(mm), Number(ss));
}

/** RFC 3339 date-time: "2026-11-26T08:30:00Z", "2026-11-26T08:30:00.5+01:00". */
const RFC3339_RE =
  /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:([Zz])|([+-])(\d{2}):(\d{2}))$/;

/**
 * Strict RFC 3339 date-time parser → epoch ms (fractional seconds kept), or
 * undefined. "T"/"Z" may be lower-case and "T" may be a space (RFC 3339 §5.6
 * note); an explicit offset ("Z" or ±hh:mm) is required; every field is
 * range-checked (no Feb 30, no hour 24).
 */
function parseRfc3339(text: string): number | undefined {
  const m = RFC3339_RE.exec(trim(text));
  if (m === null) return undefined;
  const [, y, mo, d, hh, mi, ss, frac, z, sign, oh, om] = m;
  const base = utcMs(Number(y), Number(mo), Number(d), Number(hh), Number(mi), Number(ss));
  if (base === undefined) return undefined;
  let offsetMin = 0;
  if (z === undefined) {
    const offH = Number(oh);
    const offM = Number(om);
    if (!(offH <= 23 && offM <= 59)) return undefined;
    offsetMin = (sign === '-' ? -1 : 1) * (offH * 60 + offM);
  }
  const fracMs = frac === undefined ? 0 : Number(`0.${frac}`) * 1000;
  const t = base + fracMs - offsetMin * 60_000;
  return Number.isFinite(t) ? t : undefined;
}

// ---------------------------------------------------------------------------
// Header access
// ---------------------------------------------------------------------------

/** A raw header value: strings (possibly comma-joined) or numbers. */
type RawValue = string | number;

function pushRaw(out: RawValue[], value: unknown): void {
  if (typeof value === 'string' || typeof value === 'number') {
    out.push(value);
  } else if (Array.isArray(value)) {
    for (const v of value as readonly unknown[]) {
      if (typeof v === 'string' || typeof v === 'number') out.push(v);
    }
  }
}

/** Every raw value for `name` (lower-case), in source order. */
function rawValues(headers: HeaderSource, name: string): RawValue[] {
  const out: RawValue[] = [];
  if (headers === null || typeof headers !== 'object') return out;
  if (headers instanceof Map) {
    for (const [key, value] of headers as Map<unknown, unknown>) {
      if (typeof key === 'string' && key.toLowerCase() === name) pushRaw(out, value);
    }
    return out;
  }
  const getter = (headers as { get?: unknown }).get;
  if (typeof getter === 'function') {
    pushRaw(out, (getter as (n: string) => unknown).call(headers, name));
    return out;
  }
  const record = headers as Readonly<Record<string, unknown>>;
  for (const key of Object.keys(record)) {
    if (key.toLowerCase() === name) pushRaw(out, record[key]);
  }
  return out;
}

/**
 * The first valid reading of header `name`: raw values in order, each string
 * split on commas (these headers' valid values never contain a comma), each
 * piece tried with `parse`. Numbers (from records) are passed as-is.
 */
function firstValid(
  headers: HeaderSource,
  name: string,
  parse: (piece: string | number) => number | undefined,
): number | undefined {
  for (const raw of rawValues(headers, name)) {
    const pieces = typeof raw === 'number' ? [raw] : raw.split(',');
    for (const piece of pieces) {
      const v = parse(piece);
      if (v !== undefined) return v;
    }
  }
  return undefined;
}

/** A non-negative decimal (string or finite number) times 10^exp, else undefined. */
function nonNegative(piece: string | number, exp: number): number | undefined {
  if (typeof piece === 'number') {
    if (!Number.isFinite(piece) || piece < 0) return undefined;
    const v = piece * 10 ** exp;
    return Number.isFinite(v) ? v : undefined;
  }
  return scaleDecimal(trim(piece), exp);
}

/**
 * `retry-after`: delay-seconds or HTTP-date, first valid of all values.
 * HTTP-dates contain exactly one comma, so a value is split on commas and,
 * left to right, each piece is tried alone (number, or comma-less asctime
 * date) and then re-joined with the next piece as a date. A lone date is thus
 * read whole, and "Wed, 21 Oct 2015 07:28:00 GMT, Wed, 21 Oct 2015 07:29:00
 * GMT" (two joined values) yields the first date.
 */
function retryAfter(headers: HeaderSource, nowMs: number): number | undefined {
  const one = (text: string): number | undefined => {
    const seconds = scaleDecimal(trim(text), 3);
    if (seconds !== undefined) return seconds;
    const date = parseHttpDate(text, nowMs);
    return date === undefined ? undefined : date - nowMs;
  };
  for (const raw of rawValues(headers, 'retry-after')) {
    if (typeof raw === 'number') {
      const v = nonNegative(raw, 3);
      if (v !== undefined) return v;
      continue;
    }
    const pieces = raw.split(',');
    for (let i = 0; i < pieces.length; i++) {
      const piece = pieces[i] ?? '';
      const single = one(piece);
      if (single !== undefined) return single;
      const next = pieces[i + 1];
      if (next !== undefined) {
        const date = parseHttpDate(`${piece},${next}`, nowMs);
        if (date !== undefined) return date - nowMs;
      }
    }
  }
  return undefined;
}

/** OpenAI-style reset headers: Go durations, or a bare number of seconds. */
const OPENAI_RESET_HEADERS = ['x-ratelimit-reset-requests', 'x-ratelimit-reset-tokens'] as const;

/** Anthropic-style reset headers: RFC 3339 timestamps. */
const ANTHROPIC_RESET_HEADERS = [
  'anthropic-ratelimit-requests-reset',
  'anthropic-ratelimit-tokens-reset',
  'anthropic-ratelimit-input-tokens-reset',
  'anthropic-ratelimit-output-tokens-reset',
] as const;

/**
 * The delay in ms the server asks for, or undefined when the response carries
 * no usable hint.
 *
 * Rules, in order:
 * 1. `retry-after-ms`: a non-negative decimal number of milliseconds. If
 *    present and valid, it wins.
 * 2. else `retry-after`: either a non-negative decimal number of seconds
 *    (fractions allowed, e.g. "1.5"), or an HTTP-date (RFC 9110: IMF-fixdate,
 *    e.g. "Wed, 21 Oct 2015 07:28:00 GMT", plus the obsolete RFC 850 and
 *    asctime forms; parsed strictly, so pure numbers, ISO 8601 and other
 *    unparsable text are not dates); a date becomes `date - nowMs`. If valid,
 *    it wins.
 * 3. else the rate-limit reset hints, taking the LARGEST of those present and
 *    valid (all limits must have reset before a retry can succeed):
 *    - OpenAI-style `x-ratelimit-reset-requests`, `x-ratelimit-reset-tokens`:
 *      durations parsed with {@link parseDurationMs} (a bare non-negative
 *      decimal number is seconds);
 *    - Anthropic-style `anthropic-ratelimit-requests-reset`,
 *      `anthropic-ratelimit-tokens-reset`,
 *      `anthropic-ratelimit-input-tokens-reset`,
 *      `anthropic-ratelimit-output-tokens-reset`: RFC 3339 timestamps
 *      (e.g. "2026-11-26T08:30:00Z"), becoming `timestamp - nowMs`.
 *    If none is present and valid, the result is undefined.
 * 4. Bad values are ignored (the next value, then the next rule, is tried):
 *    negative numbers, signs, exponents ("1e3"), non-numeric text,
 *    "NaN"/"Infinity", numbers that overflow to Infinity ("1e999" or 400
 *    digits), empty strings, unparsable or out-of-range dates.
 * 5. A date or timestamp in the past gives 0 (the server says "now"). Any
 *    delay larger than `maxMs` is clamped to `maxMs` (an absurd
 *    "retry-after: 99999999" must not freeze a pool for years). The result is
 *    always undefined or a finite number in [0, maxMs].
 * 6. Multiple values for one header (an array, several case-variant keys, or
 *    comma-joined as WHATWG `Headers.get` returns them): the first valid one
 *    is used. Numeric, duration and RFC 3339 values are split on commas;
 *    `retry-after` is split too, but a piece is re-joined with the next one
 *    when together they form an HTTP-date (which contains a comma), so a
 *    date is never broken apart.
 *
 * Header names are matched case-insensitively (see {@link HeaderSource}).
 * Surrounding whitespace in values is ignored. Record values that are numbers
 * are taken as that number (of ms / seconds, per header).
 *
 * @throws RangeError if `options.maxMs` is not a finite number >= 0, or
 *   `options.nowMs` is not finite.
 */
export function retryDelayFromHeaders(
  headers: HeaderSource,
  options: RetryDelayOptions = {},
): number | undefined {
  const maxMs = options.maxMs ?? DEFAULT_MAX_MS;
  if (typeof maxMs !== 'number' || !Number.isFinite(maxMs) || maxMs < 0) {
    throw new RangeError(`maxMs must be a finite number >= 0, got ${String(maxMs)}`);
  }
  const nowMs = options.nowMs ?? Date.now();
  if (typeof nowMs !== 'number' || !Number.isFinite(nowMs)) {
    throw new RangeError(`nowMs must be a finite number, got ${String(nowMs)}`);
  }
  // Math.max(0, -0) is +0, so the result is never -0.
  const clamp = (ms: number): number => Math.min(maxMs, Math.max(0, ms));

  // Rule 1.
  const ms = firstValid(headers, 'retry-after-ms', (p) => nonNegative(p, 0));
  if (ms !== undefined) return clamp(ms);

  // Rule 2.
  const ra = retryAfter(headers, nowMs);
  if (ra !== undefined) return clamp(ra);

  // Rule 3.
  let best: number | undefined;
  const consider = (v: number | undefined): void => {
    if (v !== undefined && (best === undefined || v > best)) best = v;
  };
  for (const name of OPENAI_RESET_HEADERS) {
    consider(
      firstValid(headers, name, (p) =>
        typeof p === 'number' ? nonNegative(p, 3) : (nonNegative(p, 3) ?? parseDurationMs(p)),
      ),
    );
  }
  for (const name of ANTHROPIC_RESET_HEADERS) {
    consider(
      firstValid(headers, name, (p) => {
        if (typeof p !== 'string') return undefined;
        const t = parseRfc3339(p);
        return t === undefined ? undefined : t - nowMs;
      }),
    );
  }
  return best === undefined ? undefined : clamp(best);
}
