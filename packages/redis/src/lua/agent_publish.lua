-- Queues a batch of requests for one agent type, each only if a worker of the type is live and the
-- type's queue has room. Check and append in one step, so the bound holds under any number of
-- replicas; one call carries every request of an event-loop turn (one round trip, not one each).
-- KEYS[1] the type's request stream       (keys.agentRequests)
-- KEYS[2] the type's live workers, ZSET scored by lease expiry in ms   (keys.agentWorkers)
-- ARGV[1] queue bound: entries waiting or in progress (answered entries are deleted)
-- ARGV[2..] the requests, each as: n (how many strings follow), then n field, value strings
-- Returns one result per request, in order: the new entry id, or 'no_worker' / 'full'.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local live = redis.call('ZCOUNT', KEYS[2], '(' .. now, '+inf') > 0
local room = tonumber(ARGV[1]) - redis.call('XLEN', KEYS[1])
local results = {}
local i = 2
while i <= #ARGV do
  local n = tonumber(ARGV[i])
  if not live then
    results[#results + 1] = 'no_worker'
  elseif room <= 0 then
    results[#results + 1] = 'full'
  else
    results[#results + 1] = redis.call('XADD', KEYS[1], '*', unpack(ARGV, i + 1, i + n))
    room = room - 1
  end
  i = i + n + 1
end
return results
