--[[
  A monitor says it is alive, and learns how many monitors are. Presence is a member of a
  sorted set scored by its expiry, so the count needs no SCAN; the per-monitor key carries a
  JSON summary for operators and expires on its own.

  KEYS[1] monitors zset    (fslb:monitors)
  KEYS[2] monitor key      (fslb:monitor:<id>)
  ARGV[1] monitor id
  ARGV[2] presence TTL in ms
  ARGV[3] JSON summary, or '' to leave (remove the presence at once)

  Returns: the number of live monitors, this one included unless it left.
]]
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if ARGV[3] == '' then
  redis.call('ZREM', KEYS[1], ARGV[1])
  redis.call('DEL', KEYS[2])
else
  local ttl = tonumber(ARGV[2])
  redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
  redis.call('SET', KEYS[2], ARGV[3], 'PX', ttl)
end
return redis.call('ZCARD', KEYS[1])
