-- slots_release: give connection slots back, every release of one event-loop turn (or the
-- releases left over from an outage) in one call. Idempotent: releasing twice is harmless.
--
-- KEYS[1]      slots of every user             ZSET
-- KEYS[1 + i]  slots of the user of entry i    ZSET
-- ARGV[1]      connection id of entry 1 (ARGV[i]: of entry i)
-- returns      how many of the slots were held (the rest were already released or expired)
local removed = 0
for i = 1, #ARGV do
  removed = removed + redis.call('ZREM', KEYS[1], ARGV[i])
  redis.call('ZREM', KEYS[1 + i], ARGV[i])
end
return removed
