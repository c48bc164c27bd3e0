-- slots_refresh: a replica's heartbeat. Renews the leases of the slots it holds and reports the
-- ones it lost: a slot that is gone from KEYS[1] was reaped after its lease ran out (the replica
-- was paused too long) and may have been given to someone else, so its socket must close.
-- Carries one entry per held slot, hence a key count that varies with the batch; every key
-- shares the {slots} hash tag.
--
-- KEYS[1]       slots of every user    ZSET member = connection id, score = lease expiry (ms)
-- KEYS[1 + i]   slots of the user of entry i
-- ARGV[1]       lease length (ms)
-- ARGV[1 + i]   connection id of entry i
-- returns       the connection ids that were no longer held
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lease = tonumber(ARGV[1])
local expiry = now + lease
local lost = {}

for i = 2, #ARGV do
  local id = ARGV[i]
  local userKey = KEYS[i]
  if redis.call('ZSCORE', KEYS[1], id) then
    redis.call('ZADD', KEYS[1], expiry, id)
    redis.call('ZADD', userKey, expiry, id)
    redis.call('PEXPIRE', userKey, lease)
  else
    redis.call('ZREM', userKey, id)
    lost[#lost + 1] = id
  end
end
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('PEXPIRE', KEYS[1], lease)
end
return lost
