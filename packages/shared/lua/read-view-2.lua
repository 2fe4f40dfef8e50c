--[[
  One chunk of a snapshot of the cluster for a proxy's (re)load or the CLI: up to ARGV[5] nodes
  of the nodes set from SSCAN cursor ARGV[4], each with its record, whether its liveness key
  exists, and its live reservations, with the time and the version counter at that instant.
  Read-only. Chunks keep Redis free between them: at 1000 nodes a whole snapshot in one script
  would hold every other client for milliseconds.

  KEYS[1] nodes set        (fslb:nodes)
  KEYS[2] version counter  (fslb:version)
  ARGV[1] node hash key prefix      (fslb:node:)
  ARGV[2] liveness key prefix       (fslb:alive:)
  ARGV[3] reservation set prefix    (fslb:resv:)
  ARGV[4] SSCAN cursor ('0' to start)
  ARGV[5] nodes per chunk (the SSCAN COUNT hint)

  Returns: { seconds, microseconds (Redis TIME), version counter (string or false), next cursor
             ('0' after the last chunk),
             { id, { field, value, ... } or an error string, alive (1|0), live reservations }
             for each node of the chunk }
  A key damaged into the wrong type yields its error string (the record) or 0 (reservations)
  instead of failing the whole snapshot; a nodes set of another type reads as empty.
]]
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local version = redis.pcall('GET', KEYS[2])
if type(version) ~= 'string' then version = false end
local scan = redis.pcall('SSCAN', KEYS[1], ARGV[4], 'COUNT', ARGV[5])
if scan.err then scan = { '0', {} } end
local out = { t[1], t[2], version, scan[1] }
for _, id in ipairs(scan[2]) do
  local hash = redis.pcall('HGETALL', ARGV[1] .. id)
  if hash.err then hash = hash.err end
  local resv = redis.pcall('ZCOUNT', ARGV[3] .. id, '(' .. now, '+inf')
  if type(resv) ~= 'number' then resv = 0 end
  out[#out + 1] = { id, hash, redis.call('EXISTS', ARGV[2] .. id), resv }
end
return out
