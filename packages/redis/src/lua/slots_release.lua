-- slots_release: give a connection slot back. Idempotent: releasing twice is harmless.
--
-- KEYS[1]  slots of every user      ZSET
-- KEYS[2]  slots of the slot's user ZSET
-- ARGV[1]  connection id
-- returns  1 if the slot was held, 0 if it was not (already released or expired)
local removed = redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return removed
