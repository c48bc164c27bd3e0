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
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local perSecond = tonumber(ARGV[1])
local perMinute = tonumber(ARGV[2])
local cap = math.max(perSecond, perMinute)
local results = {}
local touched = {}

for j = 3, #ARGV do
  local key = KEYS[tonumber(ARGV[j])]
  local wait = 0
  -- The perSecond-th latest acceptance must be over 1 s old; likewise per minute.
  local nth = redis.call('LINDEX', key, perSecond - 1)
  if nth then
    nth = tonumber(nth)
    if nth > now - 1000 then wait = nth + 1000 - now end
  end
  nth = redis.call('LINDEX', key, perMinute - 1)
  if nth then
    nth = tonumber(nth)
    if nth > now - 60000 and nth + 60000 - now > wait then wait = nth + 60000 - now end
  end
  if wait == 0 then
    if redis.call('LPUSH', key, now) > cap then
      redis.call('LTRIM', key, 0, cap - 1)
    end
    touched[key] = true
  end
  results[#results + 1] = wait
end

-- A user's log is useless after a minute of silence.
for key in pairs(touched) do
  redis.call('PEXPIRE', key, 60000)
end
return results
