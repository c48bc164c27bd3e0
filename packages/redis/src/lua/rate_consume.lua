-- rate_consume: every message-rate decision one replica collected during one event-loop turn
-- (for one rate shard), applied in arrival order, atomically. A message is allowed when fewer
-- than ARGV[1] messages of its user were accepted in the last 1000 ms and fewer than ARGV[2] in
-- the last 60000 ms, by Redis TIME. Denied messages are not recorded.
-- The batch carries one key per distinct user, hence a varying key count; every key shares the
-- {rate:<shard>} hash tag.
--
-- KEYS[1..n]    one log per user   LIST of accepted times (ms), newest first, at most
--                                  max(ARGV[1], ARGV[2]) long
-- ARGV[1]       max messages per second
-- ARGV[2]       max messages per minute
-- ARGV[2 + j]   decision j: the index k of its user's key in KEYS
-- returns       one integer per decision: 0 = allowed, otherwise ms until it would be allowed
--
-- Cost: a fixed number of commands per user per batch, however many of the user's messages the
-- batch holds (two LRANGEs of the entries that can decide them, one LPUSH, one PEXPIRE), not
-- three per message.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local perSecond = tonumber(ARGV[1])
local perMinute = tonumber(ARGV[2])
local cap = math.max(perSecond, perMinute)

-- Decisions per user in this batch: how far back in a user's log the batch can look.
local wanted = {}
for j = 3, #ARGV do
  local k = tonumber(ARGV[j])
  wanted[k] = (wanted[k] or 0) + 1
end

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

local users = {}
local results = {}
for j = 3, #ARGV do
  local k = tonumber(ARGV[j])
  local u = users[k]
  if not u then
    local key = KEYS[k]
    u = {
      key = key,
      accepted = 0,
      second = tail(key, perSecond, wanted[k]),
      minute = tail(key, perMinute, wanted[k]),
    }
    users[k] = u
  end
  local wait = waitFor(u.second, perSecond, u.accepted, 1000)
  local minuteWait = waitFor(u.minute, perMinute, u.accepted, 60000)
  if minuteWait > wait then wait = minuteWait end
  if wait == 0 then u.accepted = u.accepted + 1 end
  results[#results + 1] = wait
end

-- Record each user's acceptances (newest first, all `now`), keep at most `cap`; a user's log is
-- useless after a minute of silence.
for _, u in pairs(users) do
  if u.accepted > 0 then
    local length = 0
    local left = u.accepted
    while left > 0 do
      -- In chunks: unpack() is bounded by Lua's stack.
      local stamps = {}
      for i = 1, math.min(left, 1000) do stamps[i] = now end
      length = redis.call('LPUSH', u.key, unpack(stamps))
      left = left - #stamps
    end
    if length > cap then redis.call('LTRIM', u.key, 0, cap - 1) end
    redis.call('PEXPIRE', u.key, 60000)
  end
end
return results
