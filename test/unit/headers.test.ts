import { afterEach, describe, expect, it, vi } from 'vitest';
import fc from 'fast-check';
import {
  isThrottleStatus,
  parseDurationMs,
  retryDelayFromHeaders,
  type HeaderSource,
} from '../../src/headers.js';

/** Fixed clock: Wed, 21 Oct 2015 07:28:00 GMT. Tests never read the real clock. */
const NOW = Date.UTC(2015, 9, 21, 7, 28, 0);
const opts = { nowMs: NOW };
const DEFAULT_MAX = 15 * 60_000;

/** Shorthand: delay for a plain-object header record at the fixed clock. */
const delay = (headers: HeaderSource, extra: { maxMs?: number; nowMs?: number } = {}) =>
  retryDelayFromHeaders(headers, { ...opts, ...extra });

const RESET_HEADERS_OPENAI = ['x-ratelimit-reset-requests', 'x-ratelimit-reset-tokens'] as const;
const RESET_HEADERS_ANTHROPIC = [
  'anthropic-ratelimit-requests-reset',
  'anthropic-ratelimit-tokens-reset',
  'anthropic-ratelimit-input-tokens-reset',
  'anthropic-ratelimit-output-tokens-reset',
] as const;

/** Bad values every numeric header must ignore. */
const BAD_NUMBERS = [
  '-1',
  '-0.5',
  'abc',
  '',
  ' ',
  'NaN',
  'Infinity',
  '-Infinity',
  '1e999',
  '1e3',
  '+5',
  '0x10',
  '1.2.3',
  '9'.repeat(400), // overflows to Infinity
] as const;

afterEach(() => {
  vi.useRealTimers();
});

describe('isThrottleStatus', () => {
  it.each([
    [200, false],
    [204, false],
    [404, false],
    [429, true],
    [500, false],
    [502, false],
    [503, true],
    [504, false],
  ])('%i -> %s', (status, expected) => {
    expect(isThrottleStatus(status)).toBe(expected);
  });
});

describe('parseDurationMs', () => {
  it.each([
    ['1s', 1000],
    ['6m0s', 360_000],
    ['20ms', 20],
    ['1h2m3.5s', 3_723_500],
    ['0.5s', 500],
    ['.5s', 500],
    ['1.s', 1000],
    ['1.5h', 5_400_000],
    ['250us', 0.25],
    ['250\u00b5s', 0.25], // µ MICRO SIGN
    ['250\u03bcs', 0.25], // μ GREEK SMALL LETTER MU
    ['100ns', 0.0001],
    ['1m', 60_000],
    ['1h', 3_600_000],
    ['0s', 0],
    ['0', 0],
    ['1s1h', 3_601_000],
    ['1.005s', 1005], // correctly rounded, not 1004.9999999999999
    ['  2s ', 2000],
  ])('%j -> %d ms', (text, expected) => {
    expect(parseDurationMs(text)).toBe(expected);
  });

  it.each([
    '1x',
    's',
    '1m-2s',
    '',
    '   ',
    '--1s',
    '-1s',
    '+1s',
    '1', // bare number has no unit
    '1.5',
    '1 s',
    '1s 2m',
    '1S',
    '1e3s',
    '1.2.3s',
    'ms1',
    '.s',
    'NaN',
    'Infinity',
    `${'9'.repeat(400)}h`, // overflows to Infinity
  ])('%j -> undefined', (text) => {
    expect(parseDurationMs(text)).toBeUndefined();
  });

  it('never returns a negative or non-finite number', () => {
    fc.assert(
      fc.property(fc.string(), (s) => {
        const v = parseDurationMs(s);
        return v === undefined || (Number.isFinite(v) && v >= 0);
      }),
    );
  });
});

describe('retryDelayFromHeaders: rule 1, retry-after-ms', () => {
  it.each([
    ['250', 250],
    ['0', 0],
    ['1.5', 1.5],
    [' 40 ', 40],
  ])('%j -> %d', (value, expected) => {
    expect(delay({ 'retry-after-ms': value })).toBe(expected);
  });

  it('wins over retry-after and reset hints', () => {
    expect(
      delay({
        'retry-after-ms': '100',
        'retry-after': '5',
        'x-ratelimit-reset-requests': '1m',
        'anthropic-ratelimit-tokens-reset': '2015-10-21T07:30:00Z',
      }),
    ).toBe(100);
  });

  it('a valid 0 still wins', () => {
    expect(delay({ 'retry-after-ms': '0', 'retry-after': '5' })).toBe(0);
  });

  it.each(BAD_NUMBERS)('bad value %j is ignored (falls through to retry-after)', (bad) => {
    expect(delay({ 'retry-after-ms': bad })).toBeUndefined();
    expect(delay({ 'retry-after-ms': bad, 'retry-after': '2' })).toBe(2000);
  });
});

describe('retryDelayFromHeaders: rule 2, retry-after', () => {
  it.each([
    ['5', 5000],
    ['0', 0],
    ['1.5', 1500],
    ['0.25', 250],
    [' 3 ', 3000],
  ])('seconds %j -> %d ms', (value, expected) => {
    expect(delay({ 'retry-after': value })).toBe(expected);
  });

  it.each([
    ['IMF-fixdate', 'Wed, 21 Oct 2015 07:28:30 GMT', 30_000],
    ['IMF-fixdate, lower-case', 'wed, 21 oct 2015 07:28:30 gmt', 30_000],
    ['IMF-fixdate, next month', 'Sun, 01 Nov 2015 00:00:00 GMT', Date.UTC(2015, 10, 1) - NOW],
    ['RFC 850', 'Wednesday, 21-Oct-15 07:29:00 GMT', 60_000],
    ['asctime', 'Wed Oct 21 07:28:45 2015', 45_000],
    ['asctime, space-padded day', 'Sun Nov  1 00:00:00 2015', Date.UTC(2015, 10, 1) - NOW],
    ['exactly now', 'Wed, 21 Oct 2015 07:28:00 GMT', 0],
  ])('HTTP-date (%s) %j -> %d ms', (_kind, value, expected) => {
    expect(delay({ 'retry-after': value }, { maxMs: Number.MAX_SAFE_INTEGER })).toBe(expected);
  });

  it('an HTTP-date is measured from nowMs', () => {
    const h = { 'retry-after': 'Wed, 21 Oct 2015 07:28:30 GMT' };
    expect(delay(h, { nowMs: NOW })).toBe(30_000);
    expect(delay(h, { nowMs: NOW + 10_000 })).toBe(20_000);
    expect(delay(h, { nowMs: NOW + 29_999.5 })).toBe(0.5);
  });

  it('RFC 850 two-digit years more than 50 years ahead are in the past century', () => {
    const big = { maxMs: Number.MAX_SAFE_INTEGER };
    // 2060 is within 50 years of 2015: future.
    expect(delay({ 'retry-after': 'Friday, 01-Jan-60 00:00:00 GMT' }, big)).toBe(
      Date.UTC(2060, 0, 1) - NOW,
    );
    // 2066 would be more than 50 years ahead, so it is 1966: past.
    expect(delay({ 'retry-after': 'Saturday, 01-Jan-66 00:00:00 GMT' }, big)).toBe(0);
  });

  it('wins over reset hints, even when they are larger', () => {
    expect(
      delay({
        'retry-after': '1',
        'x-ratelimit-reset-requests': '1m',
        'anthropic-ratelimit-requests-reset': '2015-10-21T07:38:00Z',
      }),
    ).toBe(1000);
  });

  it('a valid 0 still wins over reset hints', () => {
    expect(delay({ 'retry-after': '0', 'x-ratelimit-reset-tokens': '9s' })).toBe(0);
  });

  it.each([
    ...BAD_NUMBERS,
    'yesterday',
    'Wed, 32 Oct 2015 07:28:00 GMT', // day out of range
    'Sun, 29 Feb 2015 07:28:00 GMT', // not a leap year
    'Wed, 21 Foo 2015 07:28:00 GMT', // bad month
    'Wed, 21 Oct 2015 24:00:00 GMT', // hour out of range
    'Wed, 21 Oct 2015 07:28:00 PST', // not GMT
    'Wed, 21 Oct 2015 07:28:00', // no zone
    '2015-10-21T07:28:30Z', // ISO 8601 is not an HTTP-date
    'Wed, 21 Oct 2015', // date without time
  ])('bad value %j is ignored (falls through to reset hints)', (bad) => {
    expect(delay({ 'retry-after': bad })).toBeUndefined();
    expect(delay({ 'retry-after': bad, 'x-ratelimit-reset-requests': '3s' })).toBe(3000);
  });
});

describe('retryDelayFromHeaders: rule 3, reset hints (largest wins)', () => {
  it.each(RESET_HEADERS_OPENAI)('OpenAI %s accepts Go durations', (name) => {
    expect(delay({ [name]: '1s' })).toBe(1000);
    expect(delay({ [name]: '6m0s' })).toBe(360_000);
    expect(delay({ [name]: '20ms' })).toBe(20);
    expect(delay({ [name]: '1h2m3.5s' }, { maxMs: 10 * 3_600_000 })).toBe(3_723_500);
  });

  it.each(RESET_HEADERS_OPENAI)('OpenAI %s accepts a bare number of seconds', (name) => {
    expect(delay({ [name]: '2' })).toBe(2000);
    expect(delay({ [name]: '2.5' })).toBe(2500);
    expect(delay({ [name]: 3 })).toBe(3000);
  });

  it.each(RESET_HEADERS_ANTHROPIC)('Anthropic %s accepts RFC 3339 timestamps', (name) => {
    expect(delay({ [name]: '2015-10-21T07:29:00Z' })).toBe(60_000);
    expect(delay({ [name]: '2015-10-21T07:29:00.500Z' })).toBe(60_500);
    expect(delay({ [name]: '2015-10-21T09:29:00+02:00' })).toBe(60_000);
    expect(delay({ [name]: '2015-10-21T06:29:00-01:00' })).toBe(60_000);
    expect(delay({ [name]: '2015-10-21t07:29:00z' })).toBe(60_000);
    expect(delay({ [name]: '2015-10-21 07:29:00Z' })).toBe(60_000);
  });

  it('an RFC 3339 timestamp is measured from nowMs', () => {
    const h = { 'anthropic-ratelimit-requests-reset': '2015-10-21T07:29:00Z' };
    expect(delay(h, { nowMs: NOW })).toBe(60_000);
    expect(delay(h, { nowMs: NOW + 45_000 })).toBe(15_000);
  });

  it.each([
    [
      'two OpenAI headers',
      { 'x-ratelimit-reset-requests': '1s', 'x-ratelimit-reset-tokens': '6m0s' },
      360_000,
    ],
    [
      'two OpenAI headers, larger first',
      { 'x-ratelimit-reset-requests': '6m0s', 'x-ratelimit-reset-tokens': '1s' },
      360_000,
    ],
    [
      'all four Anthropic headers',
      {
        'anthropic-ratelimit-requests-reset': '2015-10-21T07:28:10Z',
        'anthropic-ratelimit-tokens-reset': '2015-10-21T07:28:20Z',
        'anthropic-ratelimit-input-tokens-reset': '2015-10-21T07:28:40Z',
        'anthropic-ratelimit-output-tokens-reset': '2015-10-21T07:28:30Z',
      },
      40_000,
    ],
    [
      'Anthropic larger than OpenAI',
      { 'x-ratelimit-reset-tokens': '5s', 'anthropic-ratelimit-tokens-reset': '2015-10-21T07:28:07Z' },
      7000,
    ],
    [
      'OpenAI larger than Anthropic',
      { 'x-ratelimit-reset-tokens': '8s', 'anthropic-ratelimit-tokens-reset': '2015-10-21T07:28:07Z' },
      8000,
    ],
    [
      'a past Anthropic timestamp does not beat a valid OpenAI duration',
      { 'x-ratelimit-reset-requests': '2s', 'anthropic-ratelimit-requests-reset': '2015-10-21T07:00:00Z' },
      2000,
    ],
    [
      'an invalid one is skipped, a valid one used',
      { 'x-ratelimit-reset-requests': 'abc', 'x-ratelimit-reset-tokens': '3s' },
      3000,
    ],
    [
      'invalid larger-looking values do not count',
      { 'x-ratelimit-reset-requests': '-999s', 'anthropic-ratelimit-tokens-reset': '2099-99-99T00:00:00Z', 'x-ratelimit-reset-tokens': '3s' },
      3000,
    ],
  ])('%s', (_name, headers, expected) => {
    expect(delay(headers)).toBe(expected);
  });

  it.each([...BAD_NUMBERS, '1x', 's', '1m-2s', '--1s', '-1s'])(
    'OpenAI bad value %j is ignored',
    (bad) => {
      for (const name of RESET_HEADERS_OPENAI) {
        expect(delay({ [name]: bad })).toBeUndefined();
      }
      expect(delay({ 'x-ratelimit-reset-requests': bad, 'x-ratelimit-reset-tokens': '4s' })).toBe(4000);
    },
  );

  it.each([
    ...BAD_NUMBERS,
    '5',
    'not-a-date',
    '2026-13-01T00:00:00Z', // month 13
    '2026-02-30T00:00:00Z', // Feb 30
    '2026-11-26T24:00:00Z', // hour 24
    '2026-11-26T08:30:00', // no offset
    '2026-11-26T08:30:00+25:00', // offset out of range
    '2026-11-26', // date only
    'Wed, 21 Oct 2015 07:28:30 GMT', // HTTP-date is not RFC 3339
    '6m0s',
  ])('Anthropic bad value %j is ignored', (bad) => {
    for (const name of RESET_HEADERS_ANTHROPIC) {
      expect(delay({ [name]: bad })).toBeUndefined();
    }
    expect(
      delay({ 'anthropic-ratelimit-tokens-reset': bad, 'anthropic-ratelimit-requests-reset': '2015-10-21T07:28:04Z' }),
    ).toBe(4000);
  });

  it('Anthropic numbers (from records) are not timestamps', () => {
    expect(delay({ 'anthropic-ratelimit-tokens-reset': 5 })).toBeUndefined();
  });
});

describe('retryDelayFromHeaders: no usable hint', () => {
  it.each([
    ['empty record', {}],
    ['unrelated headers', { 'content-type': 'application/json', 'x-ratelimit-remaining-requests': '0' }],
    ['undefined values', { 'retry-after': undefined, 'retry-after-ms': undefined }],
    ['empty Headers', new Headers()],
    ['empty Map', new Map<string, string>()],
    ['empty array value', { 'retry-after': [] as string[] }],
  ])('%s -> undefined', (_name, headers) => {
    expect(delay(headers)).toBeUndefined();
  });
});

describe('retryDelayFromHeaders: header sources', () => {
  it.each([
    ['plain object', { 'retry-after': '7' }],
    ['plain object, Title-Case name', { 'Retry-After': '7' }],
    ['plain object, UPPER-CASE name', { 'RETRY-AFTER': '7' }],
    ['null-prototype object', Object.assign(Object.create(null) as Record<string, string>, { 'retry-after': '7' })],
    ['WHATWG Headers', new Headers({ 'retry-after': '7' })],
    ['WHATWG Headers, Title-Case name', new Headers({ 'Retry-After': '7' })],
    ['Map', new Map([['retry-after', '7']])],
    ['Map, UPPER-CASE key', new Map([['RETRY-AFTER', '7']])],
    ['array value', { 'retry-after': ['7'] }],
    ['number value', { 'retry-after': 7 }],
    ['custom get()', { get: (n: string) => (n === 'retry-after' ? '7' : null) }],
  ])('%s', (_name, headers) => {
    expect(delay(headers as HeaderSource)).toBe(7000);
  });

  it.each([
    ['plain object, mixed case', { 'Retry-After-Ms': '40', 'X-RateLimit-Reset-Tokens': '9s' }],
    ['Headers', new Headers({ 'RETRY-AFTER-MS': '40', 'X-RATELIMIT-RESET-TOKENS': '9s' })],
    ['Map', new Map([['Retry-After-MS', '40'], ['x-ratelimit-reset-tokens', '9s']])],
  ])('precedence holds for %s with non-lower-case names', (_name, headers) => {
    expect(delay(headers)).toBe(40);
  });

  it('a custom get() is queried with lower-case names', () => {
    const asked: string[] = [];
    const source = {
      get(name: string) {
        asked.push(name);
        return null;
      },
    };
    expect(delay(source)).toBeUndefined();
    expect(asked).toContain('retry-after-ms');
    expect(asked).toContain('retry-after');
    for (const n of [...RESET_HEADERS_OPENAI, ...RESET_HEADERS_ANTHROPIC]) expect(asked).toContain(n);
    for (const n of asked) expect(n).toBe(n.toLowerCase());
  });

  it.each([
    ['retry-after-ms', 250, 250],
    ['retry-after-ms', 0, 0],
    ['retry-after', 1.5, 1500],
    ['retry-after-ms', -1, undefined],
    ['retry-after-ms', Number.NaN, undefined],
    ['retry-after-ms', Number.POSITIVE_INFINITY, undefined],
    ['retry-after', -5, undefined],
    ['retry-after', Number.NaN, undefined],
  ])('number value %s: %d -> %s', (name, value, expected) => {
    expect(delay({ [name]: value })).toBe(expected);
  });

  it('a negative zero number gives +0, never -0', () => {
    expect(Object.is(delay({ 'retry-after-ms': -0 }), 0)).toBe(true);
  });
});

describe('retryDelayFromHeaders: rule 6, multiple values', () => {
  it.each([
    ['array, first valid', { 'retry-after': ['abc', '', '7', '9'] }, 7000],
    ['array, first wins when valid', { 'retry-after': ['9', '7'] }, 9000],
    ['array of retry-after-ms', { 'retry-after-ms': ['-1', '30'] }, 30],
    ['comma-joined retry-after-ms', { 'retry-after-ms': 'abc, 40, 50' }, 40],
    ['comma-joined retry-after seconds', { 'retry-after': '5, 10' }, 5000],
    ['comma-joined retry-after, bad first', { 'retry-after': 'nope, 10' }, 10_000],
    [
      'retry-after date is not split on its comma',
      { 'retry-after': 'Wed, 21 Oct 2015 07:28:30 GMT' },
      30_000,
    ],
    [
      'two comma-joined HTTP-dates: first',
      { 'retry-after': 'Wed, 21 Oct 2015 07:28:30 GMT, Wed, 21 Oct 2015 07:29:00 GMT' },
      30_000,
    ],
    [
      'garbage then HTTP-date',
      { 'retry-after': 'garbage, Wed, 21 Oct 2015 07:28:30 GMT' },
      30_000,
    ],
    [
      'HTTP-date then number',
      { 'retry-after': 'Wed, 21 Oct 2015 07:28:30 GMT, 1' },
      30_000,
    ],
    ['array: date kept whole', { 'retry-after': ['Wed, 21 Oct 2015 07:28:30 GMT', '1'] }, 30_000],
    ['comma-joined OpenAI reset', { 'x-ratelimit-reset-requests': 'abc, 2s, 9s' }, 2000],
    ['array OpenAI reset', { 'x-ratelimit-reset-requests': ['1x', '2s', '9s'] }, 2000],
    [
      'comma-joined Anthropic reset',
      { 'anthropic-ratelimit-tokens-reset': 'bad, 2015-10-21T07:29:00Z, 2015-10-21T07:30:00Z' },
      60_000,
    ],
  ])('%s', (_name, headers, expected) => {
    expect(delay(headers)).toBe(expected);
  });

  it('Headers.append values (joined with ", ") use the first valid one', () => {
    const h = new Headers();
    h.append('retry-after-ms', 'abc');
    h.append('retry-after-ms', '40');
    h.append('retry-after-ms', '50');
    expect(delay(h)).toBe(40);

    const d = new Headers();
    d.append('Retry-After', 'Wed, 21 Oct 2015 07:28:30 GMT');
    d.append('Retry-After', 'Wed, 21 Oct 2015 07:29:00 GMT');
    expect(delay(d)).toBe(30_000);
  });

  it('several case-variant keys in a record are all considered, first valid wins', () => {
    expect(delay({ 'Retry-After': 'bad', 'retry-after': '4' })).toBe(4000);
  });
});

describe('retryDelayFromHeaders: rule 5, past dates and clamping', () => {
  it.each([
    ['retry-after HTTP-date in the past', { 'retry-after': 'Tue, 20 Oct 2015 07:28:00 GMT' }],
    ['retry-after RFC 850 in the past', { 'retry-after': 'Sunday, 06-Nov-94 08:49:37 GMT' }],
    ['retry-after asctime in the past', { 'retry-after': 'Sun Nov  6 08:49:37 1994' }],
    ['Anthropic timestamp in the past', { 'anthropic-ratelimit-requests-reset': '2015-10-21T07:27:59Z' }],
    [
      'all Anthropic timestamps in the past',
      {
        'anthropic-ratelimit-requests-reset': '2015-10-21T07:00:00Z',
        'anthropic-ratelimit-tokens-reset': '2015-01-01T00:00:00Z',
      },
    ],
  ])('%s -> 0 (not undefined)', (_name, headers) => {
    expect(delay(headers)).toBe(0);
  });

  it('a past retry-after date still wins over reset hints (gives 0)', () => {
    expect(
      delay({ 'retry-after': 'Tue, 20 Oct 2015 07:28:00 GMT', 'x-ratelimit-reset-requests': '5s' }),
    ).toBe(0);
  });

  it.each([
    ['absurd retry-after seconds', { 'retry-after': '99999999' }],
    ['absurd retry-after-ms', { 'retry-after-ms': '99999999999' }],
    ['retry-after HTTP-date far ahead', { 'retry-after': 'Fri, 01 Jan 2100 00:00:00 GMT' }],
    ['Anthropic timestamp far ahead', { 'anthropic-ratelimit-tokens-reset': '2100-01-01T00:00:00Z' }],
    ['OpenAI duration far ahead', { 'x-ratelimit-reset-requests': '100h' }],
  ])('%s is clamped to the default maxMs (15 min)', (_name, headers) => {
    expect(delay(headers)).toBe(DEFAULT_MAX);
  });

  it.each([
    [{ 'retry-after-ms': '10000' }, 5000, 5000],
    [{ 'retry-after-ms': '5000' }, 5000, 5000],
    [{ 'retry-after-ms': '4999' }, 5000, 4999],
    [{ 'retry-after': '3' }, 2500, 2500],
    [{ 'x-ratelimit-reset-tokens': '1m' }, 1000, 1000],
    [{ 'anthropic-ratelimit-tokens-reset': '2015-10-21T07:29:00Z' }, 1000, 1000],
    [{ 'retry-after': '3' }, 0, 0],
    [{ 'retry-after': '99999999' }, 3_600_000 * 24 * 365 * 10, 99_999_999_000],
  ])('%j with maxMs %d -> %d', (headers, maxMs, expected) => {
    expect(delay(headers, { maxMs })).toBe(expected);
  });

  it('does not clamp at 15 min when a larger maxMs is given', () => {
    expect(delay({ 'retry-after': '3600' }, { maxMs: 2 * 3_600_000 })).toBe(3_600_000);
    expect(delay({ 'retry-after': '3600' })).toBe(DEFAULT_MAX);
  });

  it.each([Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, -1, -0.001])(
    'maxMs %d throws a RangeError naming maxMs',
    (maxMs) => {
      expect(() => delay({ 'retry-after': '1' }, { maxMs })).toThrow(RangeError);
      expect(() => delay({}, { maxMs })).toThrow(/maxMs/);
    },
  );

  it.each([Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY])(
    'nowMs %d throws a RangeError naming nowMs',
    (nowMs) => {
      expect(() => retryDelayFromHeaders({ 'retry-after': '1' }, { nowMs })).toThrow(RangeError);
      expect(() => retryDelayFromHeaders({}, { nowMs })).toThrow(/nowMs/);
    },
  );

  it('result is always undefined or a finite number in [0, maxMs], never -0', () => {
    const names = [
      'retry-after-ms',
      'retry-after',
      ...RESET_HEADERS_OPENAI,
      ...RESET_HEADERS_ANTHROPIC,
    ];
    const value = fc.oneof(
      fc.string(),
      fc.double().map(String),
      fc.integer({ min: -1e12, max: 1e12 }).map(String),
      fc.date({ noInvalidDate: true }).map((d) => d.toUTCString()),
      fc.date({ noInvalidDate: true }).map((d) => d.toISOString()),
      fc.double(),
      fc.array(fc.string(), { maxLength: 3 }),
    );
    fc.assert(
      fc.property(
        fc.dictionary(fc.constantFrom(...names), value),
        fc.integer({ min: 0, max: 1e9 }),
        fc.integer({ min: 0, max: 4e12 }),
        (headers, maxMs, nowMs) => {
          const r = retryDelayFromHeaders(headers as HeaderSource, { maxMs, nowMs });
          return (
            r === undefined || (Number.isFinite(r) && r >= 0 && r <= maxMs && !Object.is(r, -0))
          );
        },
      ),
    );
  });
});

describe('retryDelayFromHeaders: default options', () => {
  it('nowMs defaults to Date.now() (fake clock)', () => {
    vi.useFakeTimers();
    vi.setSystemTime(NOW + 10_000);
    expect(retryDelayFromHeaders({ 'retry-after': 'Wed, 21 Oct 2015 07:28:30 GMT' })).toBe(20_000);
    expect(
      retryDelayFromHeaders({ 'anthropic-ratelimit-tokens-reset': '2015-10-21T07:29:00Z' }),
    ).toBe(50_000);
  });

  it('maxMs defaults to 15 minutes', () => {
    expect(retryDelayFromHeaders({ 'retry-after-ms': String(DEFAULT_MAX + 1) })).toBe(DEFAULT_MAX);
    expect(retryDelayFromHeaders({ 'retry-after-ms': String(DEFAULT_MAX - 1) })).toBe(DEFAULT_MAX - 1);
  });
});
