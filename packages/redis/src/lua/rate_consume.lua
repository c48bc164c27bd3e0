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
-- KEYS[1..n]    one log per user   LIST of accepted times (ms), newest first, at most as long
--                                  as the larger limit that can bind (see Cost)
-- ARGV[1]       max messages per second
-- ARGV[2]       max messages per minute
-- ARGV[2 + k]   how many decisions of KEYS[k]'s user the batch holds, in the order they arrived
-- returns       two integers per key k, at 2k-1 and 2k: how many of its decisions are allowed
--               (the first ones), and the ms until the others would be (0 when all are allowed)
--
-- Cost: a fixed number of commands per user per batch, however many of the user's messages the
-- batch holds: one LRANGE per window that can bind (of the entries that can decide them), one
-- LPUSH, one PEXPIRE. A window that the other implies is not read: with perSecond >= perMinute no
-- 1 s window can exceed perSecond unless a 60 s window exceeds perMinute, and with
-- perMinute >= 60 * perSecond the sixty 1 s windows in any 60 s hold at most perMinute.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local perSecond = tonumber(ARGV[1])
local perMinute = tonumber(ARGV[2])
local checkSecond = perSecond < perMinute
local checkMinute = perMinute < 60 * perSecond
-- The log holds what the windows read: as many entries as the larger limit that can bind.
local cap = 0
if checkSecond then cap = perSecond end
if checkMinute and perMinute > cap then cap = perMinute end

-- How many of a user's `c` decisions one window (`limit` messages in `span` ms) allows, and the
-- ms until the first one it refuses would be allowed (0 when it allows all).
-- After `a` acceptances in this batch (all stamped `now`, pushed in front), the limit-th latest
-- acceptance is entry limit-1-a of the log as it was, or one of this batch's own when a >= limit.
-- So entries limit-c .. limit-1 of the log are all that can matter. Entries are newest first:
-- once one is inside the window, every later decision of the batch is refused too.
local function window(key, limit, span, c)
  local from = limit - c
  if from < 0 then from = 0 end
  local entries = redis.call('LRANGE', key, from, limit - 1)
  for a = 0, c - 1 do
    local i = limit - 1 - a
    local nth
    if i < 0 then nth = now else nth = tonumber(entries[i - from + 1]) end
    -- No such entry: fewer than `limit` acceptances so far, this decision passes.
    if nth and nth > now - span then return a, nth + span - now end
  end
  return c, 0
end

local results = {}
for k = 1, #KEYS do
  local key = KEYS[k]
  local c = tonumber(ARGV[2 + k])
  local accepted, wait = c, 0
  if checkSecond then accepted, wait = window(key, perSecond, 1000, c) end
  if checkMinute then
    local a, w = window(key, perMinute, 60000, c)
    -- The first refused decision is the earlier of the two; both windows refuse it when equal.
    if a < accepted then
      accepted, wait = a, w
    elseif a == accepted and w > wait then
      wait = w
    end
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
