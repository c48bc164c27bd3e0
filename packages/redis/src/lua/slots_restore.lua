-- slots_restore: after Redis was unreachable (or restarted empty), put back the slots this
-- replica still holds, whatever the limits say: those sockets are open, and counting them is
-- what lets the shared limits apply again. Key TTLs are only lengthened, as in slots_acquire:
-- other replicas' leases may be longer.
--
-- KEYS[1]       slots of every user    ZSET member = connection id, score = lease expiry (ms)
-- KEYS[1 + i]   slots of the user of entry i
-- ARGV[1]       lease length (ms)
-- ARGV[1 + i]   connection id of entry i
-- returns       how many slots were not in Redis any more
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lease = tonumber(ARGV[1])
local expiry = now + lease
local added = 0

for i = 2, #ARGV do
  added = added + redis.call('ZADD', KEYS[1], expiry, ARGV[i])
  redis.call('ZADD', KEYS[i], expiry, ARGV[i])
  lengthen(KEYS[i], lease)
end
lengthen(KEYS[1], lease)
return added
