-- slots_acquire: the connection slots one replica was asked for during one event-loop turn:
-- for each, check the global and per-user connection limits and take the slot, in order, in one
-- atomic step. Idempotent by connection id: an acquisition retried after a lost reply finds its
-- slot and renews it. Expired leases (their replica stopped heartbeating) are reaped first, so
-- they do not count. Every key shares the {slots} hash tag.
--
-- KEYS[1]       slots of every user          ZSET member = connection id, score = lease expiry (ms)
-- KEYS[2..n]    slots of one user per key    ZSET, same members and scores
-- ARGV[1]       lease length (ms)
-- ARGV[2]       max connections per user
-- ARGV[3]       max connections in total
-- ARGV[2j+2]    acquisition j: connection id
-- ARGV[2j+3]    acquisition j: the index in KEYS of its user's key (2..n)
-- returns       one code per acquisition: 0 = granted, 1 = global limit reached, 2 = user limit reached
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lease = tonumber(ARGV[1])
local maxPerUser = tonumber(ARGV[2])
local maxGlobal = tonumber(ARGV[3])
local expiry = now + lease

for k = 1, #KEYS do
  redis.call('ZREMRANGEBYSCORE', KEYS[k], '-inf', now)
end

-- Counts read once per key, then kept up to date by this script's own grants.
local total = redis.call('ZCARD', KEYS[1])
local ofUser = {}
local granted = {}
local results = {}
for j = 4, #ARGV, 2 do
  local id = ARGV[j]
  local k = tonumber(ARGV[j + 1])
  local code = 0
  if not redis.call('ZSCORE', KEYS[1], id) then
    local mine = ofUser[k]
    if mine == nil then mine = redis.call('ZCARD', KEYS[k]) end
    if total >= maxGlobal then
      code = 1
    elseif mine >= maxPerUser then
      code = 2
    else
      total = total + 1
      mine = mine + 1
    end
    ofUser[k] = mine
  end
  if code == 0 then
    redis.call('ZADD', KEYS[1], expiry, id)
    redis.call('ZADD', KEYS[k], expiry, id)
    granted[k] = true
  end
  results[#results + 1] = code
end

-- Keys of users (and clusters) nobody heartbeats any more vanish by themselves.
if next(granted) then
  redis.call('PEXPIRE', KEYS[1], lease)
  for k in pairs(granted) do redis.call('PEXPIRE', KEYS[k], lease) end
end
return results
