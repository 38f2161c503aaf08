/**
 * The Redis store's Lua script: every decision is one atomic EVALSHA of it,
 * with the server's clock (TIME), so a decision costs one round trip and no
 * two processes ever see a half-applied change. One script text per
 * configuration (`scriptFor`): rates, tolerances, queue bounds and the
 * configuration text are Lua literals; ARGV carries the operation and its
 * own arguments only.
 *
 * Keys (both declared in KEYS and sharing one hash tag, so the script runs on
 * Redis Cluster and on managed services that reject undeclared keys):
 *
 *     KEYS[1] = <prefix>{<name>}     hash: the whole schedule (fields below)
 *     KEYS[2] = <prefix>{<name>}:q   sorted set: requests waiting in acquire, score = slot
 *
 * Hash fields (numbers as decimal strings; all times in µs):
 *
 * | field   | meaning |
 * |---------|---------|
 * | cfg     | canonical configuration text; a caller with another one is refused |
 * | inc     | incarnation: TIME when this state was created (a restarted server or a lost key gets a new one) |
 * | sh      | SHIFT: virtual time v = now − sh; grows at each backoff |
 * | ps      | PAUSE_START: virtual time at which the latest pause began |
 * | t<i>    | TAT of limit i (virtual µs): the queue (FIFO order, queue length, ETAs) |
 * | d<i>    | DELIVERED of limit i (virtual µs): TAT of what was handed out; every grant conforms on it at the server's instant of its decision |
 * | dseq    | several limits: deliveries, charges and drains so far (the refund token) |
 * | last    | several limits: LAST_SLOT, the latest placement's slot (joint FIFO floor) |
 * | seq     | several limits: placements so far (the undo token, below) |
 * | thr, rej, can | backoffs, refused waits, cancelled waits (stats) |
 *
 * Delivery (as `state.ts`): a request is handed out only by a decision that
 * conforms on d<i> at the server's now: PLACE granting at once, CHECK of a
 * waiter whose slot is due (max(d, v) + ch − v ≤ τ), a reservation or lease
 * committing its stretch. A waiter that checks in late — its process
 * stopped, its event loop blocked, Redis paused — finds d<i> moved by what
 * was granted meanwhile and is told to come back when it conforms, holding
 * its place (t<i> := max(t<i>, its delivered end)); it is never granted on
 * top of them. The decision instants on the server's clock therefore
 * conform: at most burst + rate × L in any window of length L. The grant
 * reaches the client one reply later (network; the caller's to bound).
 *
 * The algorithm is `state.ts`'s, on µs instead of ns, with one refinement:
 * a decision of cost c in a limit of `rate` takes ceil(c·1e6/rate) µs of the
 * schedule (rounded once per decision, up: never faster than asked), and the
 * tolerance is τ = ceil(burst·1e6/rate) µs. Lua numbers are doubles: µs since
 * the epoch (~1.8e15) are exact integers below 2^53; ns would not be. Numbers
 * are passed to redis.call as numbers (Redis prints them with 17 significant
 * digits, exactly) or formatted with %d (exact, and much faster on the hot
 * path); never through tostring() or `..`, which keep 14 digits.
 *
 * Undo (cancel, refund, returning a lease) applies only to the latest
 * placement, recognised by a token the placement returns — as `state.ts`:
 * with one limit the TAT it wrote (TAT only grows except by an undo, and
 * every placement moves it, so TAT equal to the token means nothing was
 * placed since); with several limits the placement count `seq`. Either way a
 * resent duplicate of an undo (a client retrying after a lost reply) finds
 * the token changed or restores the same values again: never a double undo.
 *
 * Timeline (as `state.ts`): virtual(now) = max(ps, now − sh). A backoff at
 * real b until u sets ps := virtual(b), sh := u − ps, and drains every TAT to
 * at least ps + τ − ceil(1e6/rate), plus 1 µs: slots up to ps were due before
 * the pause; every later one is due after u, in its order, one interval apart.
 *
 * A state created from nothing (first use, a server restarted without
 * persistence, an evicted key) can not know what the previous incarnation
 * granted, so it starts drained as of the server's start: TAT = start + τ +
 * LEASE_AHEAD_MAX, where start is the latest instant the server can have
 * started: now − (uptime − 1 s), as INFO's uptime_in_seconds is a difference
 * of whole seconds (a server that hides INFO is taken as just started).
 * Grants of the old incarnation were made before the server started, and
 * leased slots end at most LEASE_AHEAD_MAX after they were leased, so the two
 * incarnations' schedules can not overlap: a restart never over-grants. A
 * server up for longer than τ + 1.5 s gives a new state a full bucket at
 * once, as the shared-memory limiter does.
 *
 * Speed: PLACE with one limit and CHECK, the calls of every acquire, run a
 * straight-line fast path (one HMGET, TIME, one HSET, no Lua tables); the
 * general path below it serves the rest and creates new states.
 *
 * PLACE replies {outcome, g, delay, token, inc, position, prevLast,
 * prevTat[1..n], deliveryToken (0 = not delivered), now}; CHECK replies
 * {0, 0, now, sh, ps, 0, deliveryToken} when it delivers, {1, waitUs, now,
 * sh, ps, position} when the caller must come back.
 *
 * Replies are arrays of integers (a Lua number becomes an integer reply). A
 * caller whose configuration differs from the stored one gets {-9, stored}.
 * Needs Redis ≥ 5 (or a compatible server replicating script effects):
 * scripts write after reading TIME.
 */
import { createHash } from 'node:crypto';

/** Operation codes, ARGV[1]. */
export const Op = {
  PLACE: 1,
  CHECK: 2,
  CANCEL: 3,
  SETTLE: 4,
  BACKOFF: 5,
  STATS: 6,
  LEASE: 7,
  UNLEASE: 8,
  RESET: 9,
} as const;
export type Op = (typeof Op)[keyof typeof Op];

/** PLACE outcomes, as `state.ts`'s `Outcome`. */
export const PlaceOutcome = { Granted: 0, Delayed: 1, TooLate: 2, QueueFull: 3 } as const;

/** Reply code of a caller whose configuration differs from the stored one. */
export const CONFIG_MISMATCH = -9;
/** CHECK reply code: the state was re-created since the placement (restart, lost key). */
export const STATE_LOST = -1;

/** Leased slots end at most this far ahead of the lease (real time). */
export const LEASE_AHEAD_MAX_MS = 500;
/** A waiter whose slot has been due this long without checking in is dropped from the queue set (crashed process). */
export const WAITER_GRACE_MS = 10_000;

/** One limit's constants, as the script sees them. */
export interface ScriptLimit {
  /** µs of schedule per cost unit: 1e6/rate (a float). */
  readonly perUs: number;
  /** Tolerance τ = ceil(burst·1e6/rate), µs. */
  readonly toleranceUs: number;
  /** -1 = unbounded */
  readonly maxQueue: number;
}

/** The script and its SHA1 for one configuration. */
export interface Script {
  readonly lua: string;
  readonly sha: string;
}

/**
 * The script for one configuration: its constants (rates, tolerances, queue
 * bounds and the configuration text checked against the stored one) are
 * Lua literals, so a decision passes only its own arguments. Processes with
 * the same configuration generate the same text, hence the same SHA.
 */
export function scriptFor(config: string, limits: readonly ScriptLimit[]): Script {
  const lua = template(luaString(config), limits);
  return { lua, sha: createHash('sha1').update(lua).digest('hex') };
}

/** A Lua long string holding `text` verbatim. */
function luaString(text: string): string {
  let eq = '';
  while (text.includes(`]${eq}]`)) eq += '=';
  return `[${eq}[${text}]${eq}]`;
}

/** A number as a Lua literal that parses back to the same double (JS prints the shortest such form). */
function luaNumber(x: number): string {
  if (!Number.isFinite(x)) throw new Error(`not a finite number: ${x}`);
  return String(x);
}

const template = (CFG: string, limits: readonly ScriptLimit[]): string => {
  const n = limits.length;
  const one = limits[0]!;
  const list = (f: (l: ScriptLimit) => number) => `{${limits.map((l) => luaNumber(f(l))).join(', ')}}`;
  return `
local key, qkey = KEYS[1], KEYS[2]
local op = ARGV[1]

-- Fast path: PLACE with one limit. ARGV: op, cost, maxDelayUs (-1 = none),
-- mode (0 try, 1 wait), member ('' = none).
if ${n === 1 ? 'true' : 'false'} and op == '${Op.PLACE}' then
  local s = redis.call('HMGET', key, 'cfg', 'inc', 'sh', 'ps', 't1', 'd1')
  if s[1] == ${CFG} then
    local clock = redis.call('TIME')
    local now = clock[1] * 1000000 + clock[2]
    local sh, tat = tonumber(s[3]), tonumber(s[5])
    local d = tonumber(s[6]) or tat
    local c = tat
    if d > c then c = d end
    local v = now - sh
    local ps = tonumber(s[4])
    if v < ps then v = ps end
    local cost, ch = 1, ${luaNumber(Math.ceil(one.perUs))}
    if ARGV[2] ~= '1' then
      cost = tonumber(ARGV[2])
      ch = math.ceil(cost * ${luaNumber(one.perUs)})
    end
    -- Slot g: the earliest virtual time >= v at which max(C, g) + ch - g <= tau, C = max(TAT, DELIVERED).
    local g = c + ch - ${luaNumber(one.toleranceUs)}
    if g < v then g = v end
    local delay = g + sh - now
    local wait = ARGV[4] ~= '0'
    if g > v then
      local maxDelay = tonumber(ARGV[3])
      if maxDelay >= 0 and delay > maxDelay then
        if wait then redis.call('HINCRBY', key, 'rej', 1) end
        return {${PlaceOutcome.TooLate}, g, delay, -1}
      end
      -- Queue length in cost units = how far the slot lies beyond the present.
      if ${luaNumber(one.maxQueue)} >= 0 and g - v > ${luaNumber(one.maxQueue)} * ${luaNumber(one.perUs)} then
        if wait then redis.call('HINCRBY', key, 'rej', 1) end
        return {${PlaceOutcome.QueueFull}, g, delay, 0}
      end
    end
    local t = c
    if g > t then t = g end
    local nextTat = t + ch
    if g <= v or ARGV[4] == '2' then
      -- Handed out now (DELIVERED := max(DELIVERED, v) + ch), or a
      -- reservation committing its delivery at its slot g.
      local nd = d
      local at = v
      if g > v then at = g end
      if at > nd then nd = at end
      nd = nd + ch
      -- %d: Redis would print a Lua number with %.17g, several times slower.
      redis.call('HSET', key, 't1', string.format('%d', nextTat), 'd1', string.format('%d', nd))
      if not wait then return {${PlaceOutcome.Granted}} end
      local outcome = ${PlaceOutcome.Granted}
      if g > v then outcome = ${PlaceOutcome.Delayed} end
      return {outcome, g, delay, nextTat, tonumber(s[2]), 0, 0, tat, nd, now}
    end
    redis.call('HSET', key, 't1', string.format('%d', nextTat))
    local pos = 0
    if ARGV[5] ~= '' then
      redis.call('ZADD', qkey, g, ARGV[5])
      redis.call('ZREMRANGEBYSCORE', qkey, '-inf', v - ${WAITER_GRACE_MS * 1000})
      pos = redis.call('ZCOUNT', qkey, string.format('(%.0f', v), g)
    end
    return {${PlaceOutcome.Delayed}, g, delay, nextTat, tonumber(s[2]), pos, 0, tat, 0, now}
  end
end

-- Fast path: CHECK with one limit. ARGV: op, slot, inc, member, cost. Due iff
-- slot <= max(ps, now - sh); then delivered iff max(d, v) + ch - v <= tau.
if ${n === 1 ? 'true' : 'false'} and op == '${Op.CHECK}' then
  local s = redis.call('HMGET', key, 'cfg', 'inc', 'sh', 'ps', 't1', 'd1')
  if s[1] == ${CFG} then
    local clock = redis.call('TIME')
    local now = clock[1] * 1000000 + clock[2]
    local sh, ps = tonumber(s[3]), tonumber(s[4])
    if tonumber(s[2]) ~= tonumber(ARGV[3]) then return {${STATE_LOST}, 0, now, sh, ps, 0} end
    local slot = tonumber(ARGV[2])
    local member = ARGV[4]
    local v = now - sh
    if v < ps then v = ps end
    if slot <= v then
      local tat = tonumber(s[5])
      local d = tonumber(s[6]) or tat
      local ch = ${luaNumber(Math.ceil(one.perUs))}
      if ARGV[5] ~= '1' then ch = math.ceil(tonumber(ARGV[5]) * ${luaNumber(one.perUs)}) end
      local nd = d
      if v > nd then nd = v end
      nd = nd + ch
      local at = nd - ${luaNumber(one.toleranceUs)}
      if at <= v then
        redis.call('HSET', key, 'd1', string.format('%d', nd))
        if member ~= '' then redis.call('ZREM', qkey, member) end
        return {0, 0, now, sh, ps, 0, nd}
      end
      -- Granted meanwhile leaves no room yet: hold the place, come back when it conforms.
      if tat < nd then redis.call('HSET', key, 't1', string.format('%d', nd)) end
      local pos = 0
      if member ~= '' then pos = redis.call('ZCOUNT', qkey, string.format('(%.0f', v), slot) end
      return {1, at + sh - now, now, sh, ps, pos}
    end
    local pos = 0
    if member ~= '' then pos = redis.call('ZCOUNT', qkey, string.format('(%.0f', v), slot) end
    return {1, slot + sh - now, now, sh, ps, pos}
  end
end

if op == '${Op.RESET}' then
  return {redis.call('DEL', key, qkey)}
end

-- General path. ARGV: op, then the operation's arguments from ARGV[a].
op = tonumber(op)
local n = ${n}
local per, tau, mq = ${list((l) => l.perUs)}, ${list((l) => l.toleranceUs)}, ${list((l) => l.maxQueue)}
local a = 2
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local fields = {'cfg', 'inc', 'sh', 'ps', 'last', 'seq', 'dseq'}
for i = 1, n do fields[7 + i] = 't' .. i; fields[7 + n + i] = 'd' .. i end
local s = redis.call('HMGET', key, unpack(fields))
local inc, sh, ps, last, seq, dseq
local created = false
local tat, dlv = {}, {}
if s[1] == ${CFG} then
  inc = tonumber(s[2]); sh = tonumber(s[3]); ps = tonumber(s[4]); last = tonumber(s[5]) or 0; seq = tonumber(s[6]) or 0
  dseq = tonumber(s[7]) or 0
  for i = 1, n do tat[i] = tonumber(s[7 + i]); dlv[i] = tonumber(s[7 + n + i]) or tat[i] end
elseif not s[1] then
  -- A new state: drained as of the server's start (see script.ts).
  local up = 0
  local ok, info = pcall(redis.call, 'INFO', 'server')
  if ok and type(info) == 'string' then up = tonumber(string.match(info, 'uptime_in_seconds:(%d+)')) or 0 end
  -- uptime_in_seconds is floor(now) - floor(start): a server that started
  -- 10 ms ago may report 1. The latest it can have started is now - (up - 1) s.
  local start = now - (up - 1) * 1000000
  inc = now; sh = 0; ps = 0; last = 0; seq = 0; dseq = 0; created = true
  local w = {'cfg', ${CFG}, 'inc', inc, 'sh', 0, 'ps', 0, 'last', 0, 'seq', 0, 'dseq', 0, 'thr', 0, 'rej', 0, 'can', 0}
  for i = 1, n do
    tat[i] = start + tau[i] + ${LEASE_AHEAD_MAX_MS * 1000}
    dlv[i] = tat[i]
    w[#w + 1] = 't' .. i; w[#w + 1] = tat[i]
    w[#w + 1] = 'd' .. i; w[#w + 1] = dlv[i]
  end
  redis.call('HSET', key, unpack(w))
else
  return {${CONFIG_MISMATCH}, s[1]}
end
local v = now - sh
if v < ps then v = ps end
local function above(x) return string.format('(%.0f', x) end
-- The undo token of the latest placement (see script.ts), and its check;
-- the same for the latest delivery (refunds).
local function latest(token) if n == 1 then return tat[1] == token end return seq == token end
local function latestDelivery(token) if n == 1 then return dlv[1] == token end return dseq == token end
local function dtoken() if n == 1 then return dlv[1] end return dseq end
local function cmax(i) if dlv[i] > tat[i] then return dlv[i] end return tat[i] end

if op == ${Op.PLACE} then
  -- ARGV: cost[1..n], maxDelayUs (-1 = none), mode (0 = try, 1 = wait), member ('' = none)
  local maxDelay = tonumber(ARGV[a + n])
  local mode = tonumber(ARGV[a + n + 1])
  local ch = {}
  -- Joint slot g: the earliest virtual time >= v and >= LAST_SLOT at which
  -- every limit conforms: max(TAT_i, g) + ch_i - g <= tau_i  <=>  g >= TAT_i + ch_i - tau_i.
  local g = v
  if n > 1 and last > g then g = last end
  for i = 1, n do
    ch[i] = math.ceil(tonumber(ARGV[a + i - 1]) * per[i])
    local e = cmax(i) + ch[i] - tau[i]
    if e > g then g = e end
  end
  local delay = g + sh - now
  if g > v then
    if maxDelay >= 0 and delay > maxDelay then
      if mode == 1 then redis.call('HINCRBY', key, 'rej', 1) end
      return {${PlaceOutcome.TooLate}, g, delay, -1}
    end
    for i = 1, n do
      if mq[i] >= 0 and g - v > mq[i] * per[i] then
        if mode == 1 then redis.call('HINCRBY', key, 'rej', 1) end
        return {${PlaceOutcome.QueueFull}, g, delay, i - 1}
      end
    end
  end
  local w = {}
  local reply = {g > v and ${PlaceOutcome.Delayed} or ${PlaceOutcome.Granted}, g, delay, seq + 1, inc, 0, last}
  -- Handed out now, or a reservation (mode 2) committing its delivery at g.
  local deliver = g <= v or mode == 2
  for i = 1, n do
    local t = cmax(i)
    if g > t then t = g end
    w[#w + 1] = 't' .. i; w[#w + 1] = t + ch[i]
    reply[7 + i] = tat[i]
    if n == 1 then reply[4] = t + ch[i] end
    if deliver and ch[i] > 0 then
      local nd = dlv[i]
      if g > nd then nd = g end
      if v > nd then nd = v end
      dlv[i] = nd + ch[i]
      w[#w + 1] = 'd' .. i; w[#w + 1] = dlv[i]
    end
  end
  if n > 1 then w[#w + 1] = 'last'; w[#w + 1] = g; w[#w + 1] = 'seq'; w[#w + 1] = seq + 1 end
  if deliver and n > 1 then dseq = dseq + 1; w[#w + 1] = 'dseq'; w[#w + 1] = dseq end
  reply[8 + n] = 0
  if deliver then reply[8 + n] = dtoken() end
  reply[9 + n] = now
  redis.call('HSET', key, unpack(w))
  local member = ARGV[a + n + 2]
  if g > v and member ~= '' then
    redis.call('ZADD', qkey, g, member)
    redis.call('ZREMRANGEBYSCORE', qkey, '-inf', v - ${WAITER_GRACE_MS * 1000})
    reply[6] = redis.call('ZCOUNT', qkey, above(v), g)
  end
  return reply
end

if op == ${Op.CHECK} then
  -- ARGV: slot, inc, member, cost[1..n]. As the one-limit fast path, every limit or none.
  -- A state just created (lost since the placement), or another incarnation: place again.
  if created or inc ~= tonumber(ARGV[a + 1]) then return {${STATE_LOST}, 0, now, sh, ps, 0} end
  local slot = tonumber(ARGV[a])
  local member = ARGV[a + 2]
  if slot > v then
    local pos = 0
    if member ~= '' then pos = redis.call('ZCOUNT', qkey, above(v), slot) end
    return {1, slot + sh - now, now, sh, ps, pos}
  end
  local nd, at = {}, v
  for i = 1, n do
    local ch = math.ceil(tonumber(ARGV[a + 2 + i]) * per[i])
    nd[i] = dlv[i]
    if v > nd[i] then nd[i] = v end
    nd[i] = nd[i] + ch
    if ch > 0 and nd[i] - tau[i] > at then at = nd[i] - tau[i] end
  end
  local w = {}
  if at <= v then
    for i = 1, n do
      if nd[i] ~= dlv[i] then w[#w + 1] = 'd' .. i; w[#w + 1] = nd[i]; dlv[i] = nd[i] end
    end
    if n > 1 then dseq = dseq + 1; w[#w + 1] = 'dseq'; w[#w + 1] = dseq end
    if #w > 0 then redis.call('HSET', key, unpack(w)) end
    if member ~= '' then redis.call('ZREM', qkey, member) end
    return {0, 0, now, sh, ps, 0, dtoken()}
  end
  -- Hold the place in every limit; no earlier placement may undo itself any more.
  for i = 1, n do
    if tat[i] < nd[i] then w[#w + 1] = 't' .. i; w[#w + 1] = nd[i] end
  end
  if n > 1 then
    w[#w + 1] = 'seq'; w[#w + 1] = seq + 1
    if last < at then w[#w + 1] = 'last'; w[#w + 1] = at end
  end
  if #w > 0 then redis.call('HSET', key, unpack(w)) end
  local pos = 0
  if member ~= '' then pos = redis.call('ZCOUNT', qkey, above(v), slot) end
  return {1, at + sh - now, now, sh, ps, pos}
end

if op == ${Op.CANCEL} then
  -- ARGV: slot, inc, member, token, prevLast, prevTat[1..n], cost[1..n], deliveryToken (0 = not delivered)
  local member = ARGV[a + 2]
  if member ~= '' then redis.call('ZREM', qkey, member) end
  local slot = tonumber(ARGV[a])
  if inc ~= tonumber(ARGV[a + 1]) or slot <= v then return {0} end
  redis.call('HINCRBY', key, 'can', 1)
  -- Undo only the latest placement: later ones were scheduled behind it.
  -- Restoring is idempotent, so a resent duplicate of this call is harmless.
  if not latest(tonumber(ARGV[a + 3])) then return {2} end
  local w = {}
  if n > 1 then w[1] = 'last'; w[2] = tonumber(ARGV[a + 4]) end
  for i = 1, n do
    w[#w + 1] = 't' .. i; w[#w + 1] = tonumber(ARGV[a + 4 + i])
  end
  -- A reservation committed its delivery: take that back too while it is the
  -- latest delivery (the token moves, so a duplicate can not do it twice).
  local dtok = tonumber(ARGV[a + 5 + 2 * n])
  if dtok ~= 0 and latestDelivery(dtok) then
    for i = 1, n do
      local ch = math.ceil(tonumber(ARGV[a + 4 + n + i]) * per[i])
      w[#w + 1] = 'd' .. i; w[#w + 1] = dlv[i] - ch
    end
    if n > 1 then w[#w + 1] = 'dseq'; w[#w + 1] = dseq + 1 end
  end
  redis.call('HSET', key, unpack(w))
  return {1}
end

if op == ${Op.SETTLE} then
  -- ARGV: inc, token, prevLast, prevTat[1..n], cost[1..n], actual[1..n], deliveryToken
  -- A refund needs both: nothing placed since (token) and nothing delivered since (deliveryToken).
  local isLatest = inc == tonumber(ARGV[a]) and latest(tonumber(ARGV[a + 1])) and latestDelivery(tonumber(ARGV[a + 3 + 3 * n]))
  local w = {}
  local refundAll, anyRefund, anyExtra = true, false, false
  for i = 1, n do
    local c, x = tonumber(ARGV[a + 2 + n + i]), tonumber(ARGV[a + 2 + 2 * n + i])
    if x ~= 0 then refundAll = false end
    if x < c then anyRefund = true end
    if x > c then anyExtra = true end
  end
  local refunded = 0
  if anyRefund and isLatest then
    -- Nothing placed since: TAT_i still holds what the placement wrote,
    -- max(prev, g) + ch(c); placed with x instead it would hold max(prev, g) + ch(x).
    -- The token moves on (TAT changes; seq advances), so a resent duplicate
    -- of this call can not refund twice.
    refunded = 1
    if n > 1 then
      w[#w + 1] = 'seq'; w[#w + 1] = seq + 1
      if refundAll then w[#w + 1] = 'last'; w[#w + 1] = tonumber(ARGV[a + 2]) end
    end
    for i = 1, n do
      local c, x = tonumber(ARGV[a + 2 + n + i]), tonumber(ARGV[a + 2 + 2 * n + i])
      if x < c then
        if refundAll then tat[i] = tonumber(ARGV[a + 2 + i])
        else tat[i] = tat[i] - math.ceil(c * per[i]) + math.ceil(x * per[i]) end
        dlv[i] = dlv[i] - math.ceil(c * per[i]) + math.ceil(x * per[i])
      end
    end
  end
  if anyExtra then
    -- Extra cost is a debt appended to the schedule; no undo may cross it.
    for i = 1, n do
      local c, x = tonumber(ARGV[a + 2 + n + i]), tonumber(ARGV[a + 2 + 2 * n + i])
      if x > c then
        local t = tat[i]
        if v > t then t = v end
        tat[i] = t + math.ceil((x - c) * per[i])
        local dd = dlv[i]
        if v > dd then dd = v end
        dlv[i] = dd + math.ceil((x - c) * per[i])
      end
    end
    if n > 1 and refunded == 0 then w[#w + 1] = 'seq'; w[#w + 1] = seq + 1 end
  end
  if refunded == 1 or anyExtra then
    for i = 1, n do w[#w + 1] = 't' .. i; w[#w + 1] = tat[i]; w[#w + 1] = 'd' .. i; w[#w + 1] = dlv[i] end
    if n > 1 then w[#w + 1] = 'dseq'; w[#w + 1] = dseq + 1 end
    redis.call('HSET', key, unpack(w))
  end
  return {refunded}
end

if op == ${Op.BACKOFF} then
  -- ARGV: retryAfterUs. Monotone: a shorter backoff never shortens a pause.
  local untilUs = now + tonumber(ARGV[a])
  local raw = now - sh
  local newPause = 0
  if raw >= ps then newPause = 1 end
  local nps = ps
  if raw > nps then nps = raw end
  local nsh = untilUs - nps
  if sh > nsh then nsh = sh end
  local w = {'ps', nps, 'sh', nsh}
  if n > 1 then w[5] = 'seq'; w[6] = seq + 1 end -- no undo may cross a backoff (one limit: the drain moves TAT)
  for i = 1, n do
    local target = nps + tau[i] - math.ceil(per[i])
    local t = tat[i]
    if target > t then t = target end
    w[#w + 1] = 't' .. i; w[#w + 1] = t + 1
    local dd = dlv[i]
    if target > dd then dd = target end
    w[#w + 1] = 'd' .. i; w[#w + 1] = dd + 1
  end
  if n > 1 then w[#w + 1] = 'dseq'; w[#w + 1] = dseq + 1 end
  redis.call('HSET', key, unpack(w))
  redis.call('HINCRBY', key, 'thr', 1)
  return {newPause, nps + nsh, now, nsh, nps, inc}
end

if op == ${Op.STATS} then
  -- ARGV: member ('' = none). Reply: now, v, sh, ps, inc, thr, rej, can, waiting, slot, position, then TAT per limit.
  local ex = redis.call('HMGET', key, 'thr', 'rej', 'can')
  redis.call('ZREMRANGEBYSCORE', qkey, '-inf', v - ${WAITER_GRACE_MS * 1000})
  local reply = {now, v, sh, ps, inc, tonumber(ex[1]) or 0, tonumber(ex[2]) or 0, tonumber(ex[3]) or 0,
    redis.call('ZCARD', qkey), -1, 0}
  local member = ARGV[a]
  if member ~= '' then
    local score = redis.call('ZSCORE', qkey, member)
    if score then
      reply[10] = tonumber(score)
      reply[11] = redis.call('ZCOUNT', qkey, above(v), reply[10])
    end
  end
  for i = 1, n do reply[#reply + 1] = cmax(i) end
  return reply
end

if op == ${Op.LEASE} then
  -- One limit. ARGV: wantUs, aheadUs, minUs. Takes the next stretch of the
  -- schedule [base, e) whose last slot (e - tau) is due at most aheadUs from
  -- now. Its token is e (the TAT it writes).
  local base = cmax(1)
  if v > base then base = v end
  local maxEnd = now - sh + tau[1] + tonumber(ARGV[a + 1])
  local len = maxEnd - base
  local want = tonumber(ARGV[a])
  if len > want then len = want end
  local minUs = tonumber(ARGV[a + 2])
  if len < minUs then return {0, base + minUs - maxEnd, now, sh, ps, inc} end
  local e = base + len
  -- The stretch is handed out by the leasing process: committed as delivered now.
  redis.call('HSET', key, 't1', e, 'd1', e)
  return {1, base, e, now, sh, ps, inc, e, tat[1]}
end

if op == ${Op.UNLEASE} then
  -- ARGV: inc, token, returnTo. Gives back the unused tail of this process's
  -- latest lease (and of the leases contiguous before it): TAT := returnTo,
  -- only while that lease is still the latest placement. The caller passes a
  -- returnTo inside its own leased stretch, never below another's grants.
  if inc ~= tonumber(ARGV[a]) or not latest(tonumber(ARGV[a + 1])) then return {0} end
  local to = tonumber(ARGV[a + 2])
  if to >= tat[1] or dlv[1] ~= tat[1] then return {0} end
  redis.call('HSET', key, 't1', to, 'd1', to)
  return {1}
end

return redis.error_reply('atomic-pace: unknown operation')
`;
};

