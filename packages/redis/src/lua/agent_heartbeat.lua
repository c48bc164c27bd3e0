-- Registers or renews one worker of an agent type, and forgets workers whose lease ran out.
-- Liveness is a lease scored by Redis TIME, so a crashed worker stops counting by itself.
-- KEYS[1] the type's live workers, ZSET scored by lease expiry in ms   (keys.agentWorkers)
-- KEYS[2] the type's request stream   (keys.agentRequests)
-- ARGV[1] worker id
-- ARGV[2] lease in ms
-- ARGV[3] how long the stream and registry outlive the last heartbeat, in ms
-- Returns the number of live workers of the type, this one included.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lease = tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], now + lease, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('PEXPIRE', KEYS[1], ARGV[3])
-- A type nobody serves for that long leaves no stream behind; its requests have long timed out.
redis.call('PEXPIRE', KEYS[2], ARGV[3])
return redis.call('ZCARD', KEYS[1])
