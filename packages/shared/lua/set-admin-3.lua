--[[
  An operator drains a node (no new calls, whatever its state) or undrains it. Only the `admin`
  field is written; the owning monitor keeps every other field. The change bumps the version and
  publishes the whole record with `cause` set to `drained` or `undrained`, so proxies apply it
  at once and `fslb watch` can say who changed what.

  KEYS[1] nodes set        (fslb:nodes)
  KEYS[2] node hash        (fslb:node:<id>)
  KEYS[3] version counter  (fslb:version)
  ARGV[1] node id
  ARGV[2] publish command and events channel (`PUBLISH fslb:events`, `SPUBLISH {fslb}:events`)
  ARGV[3] admin value: 'drain' or ''

  Returns: the new version when the flag changed, 0 when it already had that value, -2 when the
  node is not configured (not in the nodes set), -3 when its record is missing (the owning
  monitor rewrites it within a claim round; the flag is not written onto a partial record).
  A nodes set or record damaged into another type reads as missing (the owner rebuilds both); a
  version counter that cannot be incremented is set above the node's version.
]]
local id, admin = ARGV[1], ARGV[3]
local publish, channel = string.match(ARGV[2], '^(%u+) (.+)$')
if redis.pcall('SISMEMBER', KEYS[1], id) ~= 1 then return -2 end
if redis.pcall('HEXISTS', KEYS[2], 'sip') ~= 1 then return -3 end
if redis.call('HGET', KEYS[2], 'admin') == admin then return 0 end

local version = redis.pcall('INCR', KEYS[3])
local heldVersion = tonumber(redis.call('HGET', KEYS[2], 'version')) or 0
if type(version) ~= 'number' or version <= heldVersion then
  version = heldVersion + 1
  redis.call('SET', KEYS[3], version)
end
local t = redis.call('TIME')
local now = tostring(t[1] * 1000 + math.floor(t[2] / 1000))
redis.call('HSET', KEYS[2], 'admin', admin, 'updatedAt', now, 'version', tostring(version))

local record = {}
local flat = redis.call('HGETALL', KEYS[2])
for i = 1, #flat, 2 do record[flat[i]] = flat[i + 1] end
local cause = 'undrained'
if admin == 'drain' then cause = 'drained' end
redis.call(publish, channel, cjson.encode({ v = 1, type = 'node', id = id, version = version,
  cause = cause, at = t[1] .. string.format('%06d', tonumber(t[2])), record = record }))
return version
