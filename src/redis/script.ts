/**
 * The Redis store's one Lua script: every decision is one atomic EVALSHA of
 * it, with the server's clock (TIME), so a decision costs one round trip and
 * no two processes ever see a half-applied change.
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
 * | last    | LAST_SLOT: the latest placement's slot (joint FIFO floor across limits) |
 * | seq     | placements so far; cancel/refund undo a placement only while it is the latest |
 * | t<i>    | TAT of limit i (virtual µs) |
 * | g<i>    | cost granted or reserved in limit i (stats) |
 * | thr, rej, can | backoffs, refused waits, cancelled waits (stats) |
 *
 * The algorithm is `state.ts`'s, on µs instead of ns, with one refinement:
 * a decision of cost c in a limit of `rate` takes ceil(c·1e6/rate) µs of the
 * schedule (rounded once per decision, up: never faster than asked), and the
 * tolerance is τ = ceil(burst·1e6/rate) µs. Lua numbers are doubles: µs since
 * the epoch (~1.8e15) are exact integers below 2^53; ns would not be. Numbers
 * are passed to redis.call as numbers (Redis prints them with 17 significant
 * digits, exactly); never through tostring() or `..`, which keep 14.
 *
 * Timeline (as `state.ts`): virtual(now) = max(ps, now − sh). A backoff at
 * real b until u sets ps := virtual(b), sh := u − ps, and drains every TAT to
 * at least ps + τ − ceil(1e6/rate), plus 1 µs: slots up to ps were due before
 * the pause; every later one is due after u, in its order, one interval apart.
 *
 * A state created from nothing (first use, a server restarted without
 * persistence, an evicted key) can not know what the previous incarnation
 * granted, so it starts drained as of the server's start: TAT = start + τ +
 * LEASE_AHEAD_MAX, where start = now − uptime (INFO; a server that hides
 * INFO is taken as just started). Grants of the old incarnation were made
 * before the server started, and leased slots end at most LEASE_AHEAD_MAX
 * after they were leased, so the two incarnations' schedules can not overlap:
 * a restart never over-grants. A server up for longer than τ + 0.5 s gives a
 * new state a full bucket at once, as the shared-memory limiter does.
 *
 * Replies are arrays of integers (a Lua number becomes an integer reply). A
 * caller whose configuration differs from the stored one gets {-9, stored}.
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

const LUA = `
local key, qkey = KEYS[1], KEYS[2]
local op = tonumber(ARGV[1])
if op == ${Op.RESET} then
  return redis.call('DEL', key, qkey)
end
if redis.replicate_commands then redis.replicate_commands() end
local n = tonumber(ARGV[3])
local per, tau, mq = {}, {}, {}
for i = 1, n do
  local b = 1 + 3 * i
  per[i] = tonumber(ARGV[b]); tau[i] = tonumber(ARGV[b + 1]); mq[i] = tonumber(ARGV[b + 2])
end
local a = 4 + 3 * n
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local fields = {'cfg', 'inc', 'sh', 'ps', 'last', 'seq'}
for i = 1, n do fields[6 + i] = 't' .. i; fields[6 + n + i] = 'g' .. i end
local s = redis.call('HMGET', key, unpack(fields))
local inc, sh, ps, last, seq
local tat, granted = {}, {}
if s[1] == ARGV[2] then
  inc = tonumber(s[2]); sh = tonumber(s[3]); ps = tonumber(s[4]); last = tonumber(s[5]); seq = tonumber(s[6])
  for i = 1, n do tat[i] = tonumber(s[6 + i]); granted[i] = tonumber(s[6 + n + i]) end
elseif not s[1] then
  -- A new state: drained as of the server's start (see script.ts).
  local up = 0
  local ok, info = pcall(redis.call, 'INFO', 'server')
  if ok and type(info) == 'string' then up = tonumber(string.match(info, 'uptime_in_seconds:(%d+)')) or 0 end
  local start = now - up * 1000000
  inc = now; sh = 0; ps = 0; last = 0; seq = 0
  local w = {'cfg', ARGV[2], 'inc', inc, 'sh', 0, 'ps', 0, 'last', 0, 'seq', 0, 'thr', 0, 'rej', 0, 'can', 0}
  for i = 1, n do
    tat[i] = start + tau[i] + ${LEASE_AHEAD_MAX_MS * 1000}; granted[i] = 0
    w[#w + 1] = 't' .. i; w[#w + 1] = tat[i]; w[#w + 1] = 'g' .. i; w[#w + 1] = 0
  end
  redis.call('HSET', key, unpack(w))
else
  return {${CONFIG_MISMATCH}, s[1]}
end
local v = now - sh
if v < ps then v = ps end
local function above(x) return string.format('(%.0f', x) end

if op == ${Op.PLACE} then
  -- ARGV: cost[1..n], maxDelayUs (-1 = none), mode (0 = try, 1 = wait), member ('' = none)
  local maxDelay = tonumber(ARGV[a + n])
  local mode = tonumber(ARGV[a + n + 1])
  local ch = {}
  -- Joint slot g: the earliest virtual time >= v and >= LAST_SLOT at which
  -- every limit conforms: max(TAT_i, g) + ch_i - g <= tau_i  <=>  g >= TAT_i + ch_i - tau_i.
  local g = v
  if last > g then g = last end
  for i = 1, n do
    ch[i] = math.ceil(tonumber(ARGV[a + i - 1]) * per[i])
    local e = tat[i] + ch[i] - tau[i]
    if e > g then g = e end
  end
  local delay = g + sh - now
  if g > v then
    if maxDelay >= 0 and delay > maxDelay then
      if mode == 1 then redis.call('HINCRBY', key, 'rej', 1) end
      return {${PlaceOutcome.TooLate}, g, delay, -1}
    end
    for i = 1, n do
      -- Queue length in cost units = how far the slot lies beyond the present.
      if mq[i] >= 0 and g - v > mq[i] * per[i] then
        if mode == 1 then redis.call('HINCRBY', key, 'rej', 1) end
        return {${PlaceOutcome.QueueFull}, g, delay, i - 1}
      end
    end
  end
  local w = {'last', g, 'seq', seq + 1}
  local reply = {g > v and ${PlaceOutcome.Delayed} or ${PlaceOutcome.Granted}, g, delay, seq + 1, inc, 0, last}
  for i = 1, n do
    local t = tat[i]
    if g > t then t = g end
    w[#w + 1] = 't' .. i; w[#w + 1] = t + ch[i]
    w[#w + 1] = 'g' .. i; w[#w + 1] = granted[i] + tonumber(ARGV[a + i - 1])
    reply[7 + i] = tat[i]
  end
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
  -- ARGV: slot, inc, member. Due iff slot <= max(ps, now - sh).
  local slot = tonumber(ARGV[a])
  local member = ARGV[a + 2]
  if inc ~= tonumber(ARGV[a + 1]) then return {${STATE_LOST}, 0, now, sh, ps, 0} end
  if slot <= v then
    if member ~= '' then redis.call('ZREM', qkey, member) end
    return {0, 0, now, sh, ps, 0}
  end
  local pos = 0
  if member ~= '' then pos = redis.call('ZCOUNT', qkey, above(v), slot) end
  return {1, slot + sh - now, now, sh, ps, pos}
end

if op == ${Op.CANCEL} then
  -- ARGV: slot, inc, member, seq, prevLast, prevTat[1..n], cost[1..n]
  local member = ARGV[a + 2]
  if member ~= '' then redis.call('ZREM', qkey, member) end
  local slot = tonumber(ARGV[a])
  if inc ~= tonumber(ARGV[a + 1]) or slot <= v then return {0} end
  redis.call('HINCRBY', key, 'can', 1)
  -- Undo only the latest placement: later ones were scheduled behind it.
  -- (Restoring is idempotent, so a resent duplicate of this call is harmless;
  -- seq is left as is, so a cancel never makes an earlier placement "latest".)
  if seq ~= tonumber(ARGV[a + 3]) then return {2} end
  local w = {'last', tonumber(ARGV[a + 4])}
  for i = 1, n do
    w[#w + 1] = 't' .. i; w[#w + 1] = tonumber(ARGV[a + 4 + i])
    w[#w + 1] = 'g' .. i; w[#w + 1] = granted[i] - tonumber(ARGV[a + 4 + n + i])
  end
  redis.call('HSET', key, unpack(w))
  return {1}
end

if op == ${Op.SETTLE} then
  -- ARGV: inc, seq, prevLast, prevTat[1..n], cost[1..n], actual[1..n]
  local latest = inc == tonumber(ARGV[a]) and seq == tonumber(ARGV[a + 1])
  local w = {}
  local refundAll, anyRefund, anyExtra = true, false, false
  for i = 1, n do
    local c, x = tonumber(ARGV[a + 2 + n + i]), tonumber(ARGV[a + 2 + 2 * n + i])
    if x ~= 0 then refundAll = false end
    if x < c then anyRefund = true end
    if x > c then anyExtra = true end
  end
  local refunded = 0
  if anyRefund and latest then
    -- Nothing placed since: TAT_i still holds what the placement wrote,
    -- max(prev, g) + ch(c); placed with x instead it would hold max(prev, g) + ch(x).
    -- seq moves on, so a duplicate of this call (a client resending after a
    -- lost reply) can not refund twice.
    refunded = 1
    w[#w + 1] = 'seq'; w[#w + 1] = seq + 1
    if refundAll then w[#w + 1] = 'last'; w[#w + 1] = tonumber(ARGV[a + 2]) end
    for i = 1, n do
      local c, x = tonumber(ARGV[a + 2 + n + i]), tonumber(ARGV[a + 2 + 2 * n + i])
      if x < c then
        if refundAll then tat[i] = tonumber(ARGV[a + 2 + i])
        else tat[i] = tat[i] - math.ceil(c * per[i]) + math.ceil(x * per[i]) end
        granted[i] = granted[i] - (c - x)
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
        granted[i] = granted[i] + (x - c)
      end
    end
    if refunded == 0 then w[#w + 1] = 'seq'; w[#w + 1] = seq + 1 end
  end
  if refunded == 1 or anyExtra then
    for i = 1, n do
      w[#w + 1] = 't' .. i; w[#w + 1] = tat[i]; w[#w + 1] = 'g' .. i; w[#w + 1] = granted[i]
    end
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
  local w = {'ps', nps, 'sh', nsh, 'seq', seq + 1}
  for i = 1, n do
    local target = nps + tau[i] - math.ceil(per[i])
    local t = tat[i]
    if target > t then t = target end
    w[#w + 1] = 't' .. i; w[#w + 1] = t + 1
  end
  redis.call('HSET', key, unpack(w))
  redis.call('HINCRBY', key, 'thr', 1)
  return {newPause, nps + nsh, now, nsh, nps, inc}
end

if op == ${Op.STATS} then
  -- ARGV: member ('' = none). Reply: now, v, sh, ps, inc, thr, rej, can, waiting, slot, position, then (tat, granted) per limit.
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
  for i = 1, n do reply[#reply + 1] = tat[i]; reply[#reply + 1] = granted[i] end
  return reply
end

if op == ${Op.LEASE} then
  -- One limit. ARGV: wantUs, aheadUs, minUs. Takes the next stretch of the
  -- schedule [base, e) whose last slot (e - tau) is due at most aheadUs from now.
  local base = tat[1]
  if v > base then base = v end
  local maxEnd = now - sh + tau[1] + tonumber(ARGV[a + 1])
  local len = maxEnd - base
  local want = tonumber(ARGV[a])
  if len > want then len = want end
  local minUs = tonumber(ARGV[a + 2])
  if len < minUs then return {0, base + minUs - maxEnd, now, sh, ps, inc} end
  local e = base + len
  local lastSlot = e - tau[1]
  if lastSlot < v then lastSlot = v end
  redis.call('HSET', key, 't1', e, 'last', lastSlot, 'seq', seq + 1, 'g1', granted[1] + math.floor(len / per[1]))
  return {1, base, e, now, sh, ps, inc, seq + 1, tat[1], last}
end

if op == ${Op.UNLEASE} then
  -- ARGV: inc, seq, returnTo. Gives back the unused tail of this process's
  -- latest lease (and of the leases contiguous before it): TAT := returnTo,
  -- only while that lease is still the latest placement. The caller passes a
  -- returnTo inside its own leased stretch, never below another's grants.
  if inc ~= tonumber(ARGV[a]) or seq ~= tonumber(ARGV[a + 1]) then return {0} end
  local to = tonumber(ARGV[a + 2])
  if to >= tat[1] then return {0} end
  local w = {'t1', to, 'g1', granted[1] - math.floor((tat[1] - to) / per[1]), 'seq', seq + 1}
  -- LAST_SLOT must not hold back what came back (one limit: TAT decides).
  if last > to - tau[1] then w[#w + 1] = 'last'; w[#w + 1] = to - tau[1] end
  redis.call('HSET', key, unpack(w))
  return {1}
end

return redis.error_reply('atomic-pace: unknown operation')
`;

/** The script text and its SHA1, as EVALSHA wants it. */
export const SCRIPT = LUA;
export const SCRIPT_SHA = createHash('sha1').update(LUA).digest('hex');
