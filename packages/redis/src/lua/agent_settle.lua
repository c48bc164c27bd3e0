-- Settles requests: acknowledges them in the consumer group and deletes them, so the stream stays
-- as short as the type's queue. One call per batch of answered (or given up) requests.
-- KEYS[1] the type's request stream   (keys.agentRequests)
-- ARGV[1] the consumer group
-- ARGV[2] '' to settle every entry given; or a consumer name to settle only the entries that
--         consumer still holds (a worker giving up a request another worker may have taken over)
-- ARGV[3..] entry ids
-- Returns how many entries were acknowledged.
local ids = {}
for i = 3, #ARGV do
  if ARGV[2] == '' or #redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1, ARGV[2]) > 0 then
    ids[#ids + 1] = ARGV[i]
  end
end
if #ids == 0 then return 0 end
local acked = redis.call('XACK', KEYS[1], ARGV[1], unpack(ids))
redis.call('XDEL', KEYS[1], unpack(ids))
return acked
