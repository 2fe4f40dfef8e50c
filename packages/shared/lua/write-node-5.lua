--[[
  The owning monitor's only write to a node: fenced by the lease, so a monitor that lost its
  lease (a long pause, a partition) cannot overwrite what the new owner wrote.
  Refreshes the liveness key on every call; bumps the version and publishes the whole record
  only when a "loud" field changed. Quiet fields (heartbeatAt) are stored without an event.

  KEYS[1] node hash        (fslb:node:<id>)
  KEYS[2] lease key        (fslb:lease:<id>)
  KEYS[3] liveness key     (fslb:alive:<id>)
  KEYS[4] nodes set        (fslb:nodes)
  KEYS[5] version counter  (fslb:version)
  ARGV[1] lease token (the value redlock stored)
  ARGV[2] monitor id (written to `owner` and to the liveness key)
  ARGV[3] liveness TTL in ms
  ARGV[4] events channel
  ARGV[5] node id
  ARGV[6] n = number of loud field/value pairs that follow
  ARGV[7 .. 6+2n]   loud field, value, ...
  ARGV[7+2n ..]     quiet field, value, ...

  Returns: the new version when something loud changed; 0 when nothing did;
           -1 when the lease is not held with this token; -2 when the node is not configured.
]]
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return -1 end
if redis.call('SISMEMBER', KEYS[4], ARGV[5]) == 0 then return -2 end

redis.call('SET', KEYS[3], ARGV[2], 'PX', ARGV[3])

local n = tonumber(ARGV[6])
local loudEnd = 6 + 2 * n
local changed = redis.call('HGET', KEYS[1], 'owner') ~= ARGV[2]
for i = 7, loudEnd, 2 do
  if redis.call('HGET', KEYS[1], ARGV[i]) ~= ARGV[i + 1] then changed = true end
end
for i = 7, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
if not changed then return 0 end

local t = redis.call('TIME')
local version = redis.call('INCR', KEYS[5])
redis.call('HSET', KEYS[1], 'owner', ARGV[2], 'updatedAt', tostring(t[1] * 1000 + math.floor(t[2] / 1000)),
  'version', tostring(version))
local record = {}
local flat = redis.call('HGETALL', KEYS[1])
for i = 1, #flat, 2 do record[flat[i]] = flat[i + 1] end
redis.call('PUBLISH', ARGV[4], cjson.encode({ v = 1, type = 'node', id = ARGV[5], version = version, record = record }))
return version
