--[[
  An instance (a monitor or a proxy) says it is alive, and learns how many of its kind are.
  Presence is a member of a sorted set scored by its expiry, so the count needs no SCAN; the
  per-instance key carries a JSON summary for operators and expires on its own.

  KEYS[1] presence zset    (fslb:monitors or fslb:proxies)
  KEYS[2] instance key     (fslb:monitor:<id> or fslb:proxy:<id>)
  ARGV[1] instance id
  ARGV[2] presence TTL in ms
  ARGV[3] JSON summary, or '' to leave (remove the presence at once)

  Returns: the number of live instances of that kind, this one included unless it left.
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
