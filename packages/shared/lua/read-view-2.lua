--[[
  One consistent snapshot of the whole cluster for a proxy's (re)load: every configured node's
  record, whether its liveness key exists, and its live reservations, with the time and the
  version counter at that instant. Read-only.

  KEYS[1] nodes set        (fslb:nodes)
  KEYS[2] version counter  (fslb:version)
  ARGV[1] node hash key prefix      (fslb:node:)
  ARGV[2] liveness key prefix       (fslb:alive:)
  ARGV[3] reservation set prefix    (fslb:resv:)

  Returns: { seconds, microseconds (Redis TIME), version counter (string or false),
             { id, { field, value, ... } or an error string, alive (1|0), live reservations }
             for each node }
  A key damaged into the wrong type yields its error string (the record) or 0 (reservations)
  instead of failing the whole snapshot.
]]
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local version = redis.pcall('GET', KEYS[2])
if type(version) ~= 'string' then version = false end
local out = { t[1], t[2], version }
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local hash = redis.pcall('HGETALL', ARGV[1] .. id)
  if hash.err then hash = hash.err end
  local resv = redis.pcall('ZCOUNT', ARGV[3] .. id, '(' .. now, '+inf')
  if type(resv) ~= 'number' then resv = 0 end
  out[#out + 1] = { id, hash, redis.call('EXISTS', ARGV[2] .. id), resv }
end
return out
