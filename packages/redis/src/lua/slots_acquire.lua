-- slots_acquire: check the global and per-user connection limits and take a slot, in one step.
-- Idempotent by connection id: a call retried after a lost reply finds its slot and renews it.
-- Expired leases (their replica stopped heartbeating) are reaped first, so they do not count.
--
-- KEYS[1]  slots of every user      ZSET member = connection id, score = lease expiry (ms)
-- KEYS[2]  slots of this user       ZSET, same members and scores
-- ARGV[1]  connection id
-- ARGV[2]  lease length (ms)
-- ARGV[3]  max connections per user
-- ARGV[4]  max connections in total
-- returns  0 = granted, 1 = global limit reached, 2 = user limit reached
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local expiry = now + tonumber(ARGV[2])

redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)

if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[4]) then
    return 1
  end
  if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[3]) then
    return 2
  end
end

redis.call('ZADD', KEYS[1], expiry, ARGV[1])
redis.call('ZADD', KEYS[2], expiry, ARGV[1])
-- Keys of users (and clusters) nobody heartbeats any more vanish by themselves.
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return 0
