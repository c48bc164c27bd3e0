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
-- KEYS[1..n]    one log per user   LIST of accepted times (ms), newest first: every acceptance
--                                  still inside the longer window that can bind, possibly some
--                                  older ones, never more than the larger such limit (see Cost)
-- ARGV[1]       max messages per second
-- ARGV[2]       max messages per minute
-- ARGV[2 + k]   how many decisions of KEYS[k]'s user the batch holds, in the order they arrived
-- returns       two integers per key k, at 2k-1 and 2k: how many of its decisions are allowed
--               (the first ones), and the ms until the others would be (0 when all are allowed)
--
-- Cost: a fixed number of commands per user per batch, however many of the user's messages the
-- batch holds. The batch's stamps are pushed first (LPUSH answers the log's length); a window
-- whose limit the log's length cannot reach allows them all without a read. Otherwise one LRANGE
-- of the entries that can decide them, and one LTRIM that drops the refused stamps, the entries
-- no window can read any more (older than the longer window, which also keeps the log short
-- enough for the next batches to skip their reads) and anything past the cap. Then one PEXPIRE.
-- A window that the other implies is not read: with perSecond >= perMinute no 1 s window can
-- exceed perSecond unless a 60 s window exceeds perMinute, and with perMinute >= 60 * perSecond
-- the sixty 1 s windows in any 60 s hold at most perMinute.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
-- Pushed as text: redis.call converts a Lua number to text on every use, which cost more than the
-- push itself.
local stamp = string.format('%d', now)
local perSecond = tonumber(ARGV[1])
local perMinute = tonumber(ARGV[2])
local checkSecond = perSecond < perMinute
local checkMinute = perMinute < 60 * perSecond
-- The log holds what the windows read: as many entries as the larger limit that can bind, none
-- older than the longer window that can bind.
local cap, span = 0, 1000
if checkSecond then cap = perSecond end
if checkMinute then
  span = 60000
  if perMinute > cap then cap = perMinute end
end
-- An entry at or before this can never count again.
local horizon = now - span

-- How many of a user's `c` decisions one window (`limit` messages in `windowSpan` ms) allows, the ms
-- until the first one it refuses would be allowed (0 when it allows all), and the index (in the
-- log as it was) of its first entry older than `horizon`, if it read one.
-- `before` is the log's length before this batch's `c` stamps were pushed in front. After `a`
-- acceptances in this batch (all stamped `now`), the limit-th latest acceptance is entry
-- limit-1-a of the log as it was, or one of this batch's own when a >= limit. So entries
-- limit-c .. limit-1 of the old log (c more in the list as it is now) are all that can matter,
-- and none of them exists when before <= limit - c. Entries are newest first: once one is inside
-- the window, every later decision of the batch is refused too.
local function window(key, limit, windowSpan, c, before)
  if before + c <= limit then return c, 0, nil end
  local from = limit - c
  if from < 0 then from = 0 end
  local entries = redis.call('LRANGE', key, from + c, limit - 1 + c)
  local stale = nil
  for i = #entries, 1, -1 do
    if tonumber(entries[i]) > horizon then break end
    stale = from + i - 1
  end
  for a = 0, c - 1 do
    local i = limit - 1 - a
    local nth
    if i < 0 then nth = now else nth = tonumber(entries[i - from + 1]) end
    -- No such entry: fewer than `limit` acceptances so far, this decision passes. The wait is never
    -- longer than the window: an entry stamped after `now` (Redis' clock went back, say a failover
    -- to a replica whose clock is behind) must not tell a client to go away for the difference.
    if nth and nth > now - windowSpan then return a, math.min(nth + windowSpan - now, windowSpan), stale end
  end
  return c, 0, stale
end

local results = {}
-- One table of this call's stamp, as long as the most any user needed so far, pushed from.
local stamps, filled = {}, 0
for k = 1, #KEYS do
  local key = KEYS[k]
  local c = tonumber(ARGV[2 + k])
  local length = 0
  local left = c
  while left > 0 do
    -- In chunks: unpack() is bounded by Lua's stack.
    local n = math.min(left, 1000)
    while filled < n do
      filled = filled + 1
      stamps[filled] = stamp
    end
    length = redis.call('LPUSH', key, unpack(stamps, 1, n))
    left = left - n
  end
  local before = length - c
  local accepted, wait, stale = c, 0, nil
  if checkSecond then accepted, wait, stale = window(key, perSecond, 1000, c, before) end
  if checkMinute then
    local a, w, s = window(key, perMinute, 60000, c, before)
    if s and (not stale or s < stale) then stale = s end
    -- The first refused decision is the earlier of the two; both windows refuse it when equal.
    if a < accepted then
      accepted, wait = a, w
    elseif a == accepted and w > wait then
      wait = w
    end
  end
  results[2 * k - 1] = accepted
  results[2 * k] = wait
  -- Keep this batch's acceptances and, of the old log, what can still be read: entries before the
  -- first stale one found (entries are newest first), at most `cap` in all.
  local keep = accepted + (stale or before)
  if keep > cap then keep = cap end
  local drop = c - accepted
  if drop > 0 or keep < accepted + before then
    if keep > 0 then
      redis.call('LTRIM', key, drop, drop + keep - 1)
    else
      redis.call('DEL', key)
    end
  end
  -- A user's log is useless a minute after its latest acceptance (a denial records nothing).
  if accepted > 0 then redis.call('PEXPIRE', key, '60000') end
end
return results
