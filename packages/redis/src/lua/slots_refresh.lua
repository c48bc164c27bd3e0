-- slots_refresh: a replica's heartbeat. Renews the leases of the slots it holds and reports the
-- ones that are gone: a slot missing from KEYS[1] was reaped after its lease ran out (the replica
-- was paused too long, and the slot may have been given to someone else) or lost by Redis (a
-- restart or failover); the replica tells which (docs/REDIS.md). Carries one entry per held slot,
-- hence a key count that varies with the batch; every key shares the {slots} hash tag. Key TTLs
-- are only lengthened, as in slots_acquire: other replicas' leases may be longer.
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
    lengthen(userKey, lease)
  else
    redis.call('ZREM', userKey, id)
    lost[#lost + 1] = id
  end
end
lengthen(KEYS[1], lease)
return lost
