--[[
  An instance (a monitor or a proxy) says it is alive, and learns how many of its kind are.
  Presence is a member of a sorted set scored by its expiry, so the count needs no SCAN; the
  per-instance key carries a JSON summary for operators and expires on its own.

  A member is live while its instance key exists (both are written here, with the same TTL), so
  a member without one was added by hand or outlived a damaged key: it is dropped rather than
  counted (a phantom monitor would shrink every monitor's fair share). A set damaged into another
  type starts afresh; this instance's own key or member, lost or unreadable while it was
  present, is written again. Each repair is returned as a note naming the key.

  KEYS[1] presence zset    (fslb:monitors or fslb:proxies)
  KEYS[2] instance key     (fslb:monitor:<id> or fslb:proxy:<id>)
  ARGV[1] instance id
  ARGV[2] presence TTL in ms
  ARGV[3] JSON summary, or '' to leave (remove the presence at once)
  ARGV[4] instance key prefix (fslb:monitor: or fslb:proxy:)

  Returns: { live, note, ... }: the number of live instances of that kind, this one included
  unless it left, then one note per key repaired.
]]
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local notes = {}
local kind = redis.call('TYPE', KEYS[1]).ok
if kind ~= 'zset' and kind ~= 'none' then
  redis.call('DEL', KEYS[1])
  notes[#notes + 1] = KEYS[1] .. ': a ' .. kind .. ' where a zset belongs; deleted'
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if ARGV[3] == '' then
  redis.call('ZREM', KEYS[1], ARGV[1])
  redis.call('DEL', KEYS[2])
else
  local strays = 0
  for _, member in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
    -- pcall: a key this master does not hold while a Redis Cluster moves the slot is no stray.
    if member ~= ARGV[1] and redis.pcall('EXISTS', ARGV[4] .. member) == 0 then
      redis.call('ZREM', KEYS[1], member)
      strays = strays + 1
    end
  end
  if strays > 0 then
    notes[#notes + 1] = KEYS[1] .. ': ' .. strays .. ' members without an instance key; removed'
  end
  local mine = redis.call('TYPE', KEYS[2]).ok
  local member = redis.call('ZSCORE', KEYS[1], ARGV[1])
  if mine == 'string' then
    local ok, summary = pcall(cjson.decode, redis.call('GET', KEYS[2]))
    if not ok or type(summary) ~= 'table' then
      notes[#notes + 1] = KEYS[2] .. ': unreadable; written again'
    end
    if not member then notes[#notes + 1] = KEYS[1] .. ': ' .. ARGV[1] .. ' was missing; added again' end
  elseif mine ~= 'none' then
    notes[#notes + 1] = KEYS[2] .. ': a ' .. mine .. ' where a string belongs; written again'
  elseif member then
    notes[#notes + 1] = KEYS[2] .. ': missing before its time; written again'
  end
  local ttl = tonumber(ARGV[2])
  redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
  redis.call('SET', KEYS[2], ARGV[3], 'PX', ttl)
end
return { redis.call('ZCARD', KEYS[1]), unpack(notes) }
