-- Queues one request for an agent type, if a worker of the type is live and its queue has room.
-- Check and append in one step, so the queue bound holds under any number of replicas.
-- KEYS[1] the type's request stream       (keys.agentRequests)
-- KEYS[2] the type's live workers, ZSET scored by lease expiry in ms   (keys.agentWorkers)
-- ARGV[1] queue bound: entries waiting or in progress (answered entries are deleted)
-- ARGV[2..] the entry's field, value pairs
-- Returns the new entry id, or 'no_worker' / 'full'.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if redis.call('ZCOUNT', KEYS[2], '(' .. now, '+inf') == 0 then
  return 'no_worker'
end
if redis.call('XLEN', KEYS[1]) >= tonumber(ARGV[1]) then
  return 'full'
end
return redis.call('XADD', KEYS[1], '*', unpack(ARGV, 2))
