-- Settles answered requests: acknowledges them in the consumer group and deletes them, so the
-- stream stays as short as the type's queue. One call per batch of answered requests.
-- KEYS[1] the type's request stream   (keys.agentRequests)
-- ARGV[1] the consumer group
-- ARGV[2..] entry ids
-- Returns how many entries were acknowledged.
local acked = redis.call('XACK', KEYS[1], ARGV[1], unpack(ARGV, 2))
redis.call('XDEL', KEYS[1], unpack(ARGV, 2))
return acked
