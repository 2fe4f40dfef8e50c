--[[
  The owning monitor's only write to a node: fenced by the lease, so a monitor that lost its
  lease (a long pause, a partition) cannot overwrite what the new owner wrote.
  Refreshes the liveness key on every call; bumps the version and publishes the whole record
  only when a "loud" field changed or a reservation was settled. Quiet fields (heartbeatAt) are
  stored without an event.

  Settling: FreeSWITCH counted the listed calls (their CHANNEL_CREATE carried these Call-IDs),
  and the `sessions` written here includes them. In the same write, each call's reservations end
  on this node and on every other node it held a slot on (fslb:call:<callId> lists them), so a
  call is never counted twice, nor dropped from the count between reservation and session.

  KEYS[1] node hash        (fslb:node:<id>)
  KEYS[2] lease key        (fslb:lease:<id>)
  KEYS[3] liveness key     (fslb:alive:<id>)
  KEYS[4] nodes set        (fslb:nodes)
  KEYS[5] version counter  (fslb:version)
  KEYS[6] reservation set  (fslb:resv:<id>)
  ARGV[1] lease token (the value redlock stored)
  ARGV[2] monitor id (written to `owner` and to the liveness key)
  ARGV[3] liveness TTL in ms
  ARGV[4] events channel
  ARGV[5] node id
  ARGV[6] n = number of loud field/value pairs
  ARGV[7] m = number of quiet field/value pairs
  ARGV[8] reservation set key prefix (fslb:resv:)
  ARGV[9] call key prefix (fslb:call:)
  ARGV[10 .. 9+2n]          loud field, value, ...
  ARGV[10+2n .. 9+2n+2m]    quiet field, value, ...
  ARGV[10+2n+2m ..]         Call-IDs to settle

  Returns: the new version when something loud changed or a reservation was settled; 0 when
           nothing did; -1 when the lease is not held with this token; -2 when the node is not
           configured.
  The event carries `at` (Redis time in microseconds, as a string) and `resv` (the node's
  live reservations) beside the record, so that readers can order load figures from any writer.
]]
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return -1 end
if redis.call('SISMEMBER', KEYS[4], ARGV[5]) == 0 then return -2 end

redis.call('SET', KEYS[3], ARGV[2], 'PX', ARGV[3])

local id = ARGV[5]
local n, m = tonumber(ARGV[6]), tonumber(ARGV[7])
local loudEnd = 9 + 2 * n
local fieldsEnd = loudEnd + 2 * m
local changed = redis.call('HGET', KEYS[1], 'owner') ~= ARGV[2]
for i = 10, loudEnd, 2 do
  if redis.call('HGET', KEYS[1], ARGV[i]) ~= ARGV[i + 1] then changed = true end
end
for i = 10, fieldsEnd, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end

for i = fieldsEnd + 1, #ARGV do
  local callId = ARGV[i]
  if redis.call('ZREM', KEYS[6], callId) == 1 then changed = true end
  local callKey = ARGV[9] .. callId
  local held = redis.call('GET', callKey)
  if held then
    for other in string.gmatch(held, '%S+') do
      if other ~= id then redis.call('ZREM', ARGV[8] .. other, callId) end
    end
    redis.call('DEL', callKey)
  end
end
if not changed then return 0 end

local t = redis.call('TIME')
local nowMs = t[1] * 1000 + math.floor(t[2] / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[6], '-inf', nowMs)
local resv = redis.call('ZCARD', KEYS[6])
local version = redis.call('INCR', KEYS[5])
-- A lost or reset counter must not hand out a version this node already had.
local heldVersion = tonumber(redis.call('HGET', KEYS[1], 'version')) or 0
if version <= heldVersion then
  version = heldVersion + 1
  redis.call('SET', KEYS[5], version)
end
redis.call('HSET', KEYS[1], 'owner', ARGV[2], 'updatedAt', tostring(nowMs), 'version', tostring(version))
local record = {}
local flat = redis.call('HGETALL', KEYS[1])
for i = 1, #flat, 2 do record[flat[i]] = flat[i + 1] end
redis.call('PUBLISH', ARGV[4], cjson.encode({ v = 1, type = 'node', id = id, version = version,
  at = t[1] .. string.format('%06d', tonumber(t[2])), resv = resv, record = record }))
return version
