-- Prepended to the slots_* scripts that write slot sets (src/limits/scripts.ts joins them).
-- lengthen(key, ttl): gives the key at least `ttl` ms to live, never less than it has. The sets are
-- shared with replicas whose lease may be longer (a rolling change of WEBSOCKET_LEASE_SECONDS), and
-- each entry's score already says when it expires. PTTL is -1 for a key with no TTL (just created)
-- and -2 for no key (PEXPIRE is then a no-op): both get `ttl`. PEXPIRE GT would leave a key with no
-- TTL as it is (Redis counts "none" as infinite). Each key is looked at once per call.
local lengthened = {}
local function lengthen(key, ttl)
  if lengthened[key] then return end
  lengthened[key] = true
  if redis.call('PTTL', key) < ttl then redis.call('PEXPIRE', key, ttl) end
end

