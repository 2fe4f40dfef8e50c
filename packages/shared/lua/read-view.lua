--[[
  One chunk of a snapshot of the cluster for a proxy's (re)load or the CLI: the nodes an SSCAN
  of the nodes set just listed, each with its record, whether its liveness key exists, and its
  live reservations, with the time and the version counter at that instant. Read-only.
  Every key it reads is declared, so that on a Redis Cluster whose slot is being moved the
  chunk runs where all of them are, or is refused (TRYAGAIN, ASK) and retried: never a read that
  sees the nodes set on one side of a migration and the records on the other. A node no longer
  in the set (removed since the SSCAN) is left out.

  KEYS[1] nodes set        (fslb:nodes)
  KEYS[2] version counter  (fslb:version)
  KEYS[3i], KEYS[3i+1], KEYS[3i+2] node hash, liveness key, reservation set of node i = 1..n
  ARGV[i] the id of node i

  Returns: { seconds, microseconds (Redis TIME), version counter (string or false),
             { id, { field, value, ... } or an error string, alive (1|0), live reservations }
             for each node still in the set }
  A key damaged into the wrong type yields its error string (the record) or 0 (reservations)
  instead of failing the whole snapshot.
]]
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local version = redis.pcall('GET', KEYS[2])
if type(version) ~= 'string' then version = false end
local out = { t[1], t[2], version }
for i, id in ipairs(ARGV) do
  if redis.pcall('SISMEMBER', KEYS[1], id) ~= 0 then
    local hash = redis.pcall('HGETALL', KEYS[3 * i])
    if hash.err then hash = hash.err end
    local resv = redis.pcall('ZCOUNT', KEYS[3 * i + 2], '(' .. now, '+inf')
    if type(resv) ~= 'number' then resv = 0 end
    out[#out + 1] = { id, hash, redis.call('EXISTS', KEYS[3 * i + 1]), resv }
  end
end
return out
