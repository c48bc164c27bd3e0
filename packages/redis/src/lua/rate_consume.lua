-- rate_consume: every message-rate decision one replica collected during one event-loop turn
-- (for one rate shard), atomically. A message is allowed when fewer than ARGV[1] messages of its
-- user were accepted in the last 1000 ms and fewer than ARGV[2] in the last 60000 ms, by Redis
-- TIME. Denied messages are not recorded.
-- Users do not share windows, so only the order of one user's decisions matters, and within one
-- call (one `now`) a user's decisions are some allowed, then the rest denied with one wait: the
-- batch carries a count per user, and the answer is a count and a wait per user.
-- The batch carries one key per distinct user, hence a varying key count; every key shares the
-- {rate:<shard>} hash tag.
--
-- KEYS[1..n]    one log per user   LIST of accepted times (ms), newest first, at most
--                                  max(ARGV[1], ARGV[2]) long
-- ARGV[1]       max messages per second
-- ARGV[2]       max messages per minute
-- ARGV[2 + k]   how many decisions of KEYS[k]'s user the batch holds, in the order they arrived
-- returns       two integers per key k, at 2k-1 and 2k: how many of its decisions are allowed
--               (the first ones), and the ms until the others would be (0 when all are allowed)
--
-- Cost: a fixed number of commands per user per batch, however many of the user's messages the
-- batch holds (two LRANGEs of the entries that can decide them, one LPUSH, one PEXPIRE).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local perSecond = tonumber(ARGV[1])
local perMinute = tonumber(ARGV[2])
local cap = math.max(perSecond, perMinute)

-- The log entries that can decide a user's decisions. After `a` acceptances in this batch (all
-- stamped `now`, pushed in front), the limit-th latest acceptance is entry limit-1-a of the log as
-- it was, or one of this batch's own when a >= limit. So entries limit-c .. limit-1 of the log
-- (c = the user's decisions here) are all that can matter.
local function tail(key, limit, c)
  local from = limit - c
  if from < 0 then from = 0 end
  return { from = from, entries = redis.call('LRANGE', key, from, limit - 1) }
end

-- Ms until `nth` (the limit-th latest acceptance) leaves a window of `span` ms; 0 when it has.
local function waitFor(range, limit, accepted, span)
  local i = limit - 1 - accepted
  local nth
  if i < 0 then
    nth = now
  else
    nth = range.entries[i - range.from + 1]
  end
  if not nth then return 0 end
  nth = tonumber(nth)
  if nth > now - span then return nth + span - now end
  return 0
end

local results = {}
for k = 1, #KEYS do
  local key = KEYS[k]
  local c = tonumber(ARGV[2 + k])
  local second = tail(key, perSecond, c)
  local minute = tail(key, perMinute, c)
  local accepted = 0
  local wait = 0
  while accepted < c do
    wait = waitFor(second, perSecond, accepted, 1000)
    local minuteWait = waitFor(minute, perMinute, accepted, 60000)
    if minuteWait > wait then wait = minuteWait end
    if wait > 0 then break end
    accepted = accepted + 1
  end
  results[2 * k - 1] = accepted
  results[2 * k] = wait
  -- Record the acceptances (newest first, all `now`), keep at most `cap`; a user's log is
  -- useless after a minute of silence.
  if accepted > 0 then
    local length = 0
    local left = accepted
    while left > 0 do
      -- In chunks: unpack() is bounded by Lua's stack.
      local stamps = {}
      for i = 1, math.min(left, 1000) do stamps[i] = now end
      length = redis.call('LPUSH', key, unpack(stamps))
      left = left - #stamps
    end
    if length > cap then redis.call('LTRIM', key, 0, cap - 1) end
    redis.call('PEXPIRE', key, 60000)
  end
end
return results
