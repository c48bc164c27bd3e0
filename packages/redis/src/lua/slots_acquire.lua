-- slots_acquire: the connection slots one replica was asked for during one event-loop turn:
-- for each, check the global and per-user connection limits and take the slot, in order, in one
-- atomic step. Idempotent by connection id: an acquisition retried after a lost reply finds its
-- slot and renews it. Expired leases (their replica stopped heartbeating) are reaped first, so
-- they do not count. One entry per acquisition, as slots_refresh and slots_release take them;
-- every key shares the {slots} hash tag. Keys of users (and clusters) nobody heartbeats any more
-- vanish by themselves; their TTL is only ever lengthened (`lengthen`, from lib_lengthen.lua,
-- prepended), as replicas with a longer lease may share them.
--
-- KEYS[1]       slots of every user          ZSET member = connection id, score = lease expiry (ms)
-- KEYS[1 + i]   slots of the user of entry i ZSET, same members and scores
-- ARGV[1]       lease length (ms)
-- ARGV[2]       max connections per user
-- ARGV[3]       max connections in total
-- ARGV[3 + i]   connection id of entry i
-- returns       one code per entry: 0 = granted, 1 = global limit reached, 2 = user limit reached
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lease = tonumber(ARGV[1])
local maxPerUser = tonumber(ARGV[2])
local maxGlobal = tonumber(ARGV[3])
local expiry = now + lease

redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
-- Counts read once per key (after reaping it), then kept up to date by this script's own grants.
local total = redis.call('ZCARD', KEYS[1])
local ofUser = {}
local granted = false
local results = {}
for i = 1, #ARGV - 3 do
  local id = ARGV[3 + i]
  local userKey = KEYS[1 + i]
  local mine = ofUser[userKey]
  if mine == nil then
    redis.call('ZREMRANGEBYSCORE', userKey, '-inf', now)
    mine = redis.call('ZCARD', userKey)
  end
  local code = 0
  if not redis.call('ZSCORE', KEYS[1], id) then
    if total >= maxGlobal then
      code = 1
    elseif mine >= maxPerUser then
      code = 2
    else
      total = total + 1
      mine = mine + 1
    end
  end
  ofUser[userKey] = mine
  if code == 0 then
    redis.call('ZADD', KEYS[1], expiry, id)
    redis.call('ZADD', userKey, expiry, id)
    lengthen(userKey, lease)
    granted = true
  end
  results[i] = code
end
if granted then lengthen(KEYS[1], lease) end
return results
