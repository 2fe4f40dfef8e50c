--[[
  Reserves a slot for one call, atomically, on the first node of the proxy's ordered candidate
  list that is eligible and has room: sessions + live reservations < maxSessions. However many
  proxies run this at once, a node never holds more calls and reservations than it takes. The
  candidates after it that have room too are named as failover targets (serial forking reaches
  one only when the chosen node failed); they take no slot, so that failovers that rarely happen
  never hold capacity that first choices need.

  The slot lapses by itself after ARGV[4] ms. Slots that an earlier attempt with the same
  Call-ID still holds (an INVITE sent again after a 401/407) end first. A reservation set
  damaged into another type is deleted and started afresh.

  KEYS[1]       call key         (fslb:call:<callId>)
  KEYS[3i-1]    node hash        (fslb:node:<id>)   of candidate i = 1..c
  KEYS[3i]      reservation set  (fslb:resv:<id>)   of candidate i
  KEYS[3i+1]    liveness key     (fslb:alive:<id>)  of candidate i
  ARGV[1] Call-ID
  ARGV[2] slots to take at most (1: the chosen node)
  ARGV[3] failover targets wanted at most after the slots
  ARGV[4] TTL of a slot, ms
  ARGV[5] reservation set key prefix (fslb:resv:), for the slots of an earlier attempt
  ARGV[5+i] node id of candidate i

  Returns: { seconds, microseconds (Redis TIME), { status, sessions, reservations, maxSessions }
             for each candidate in order }
    status  1  a slot was taken on the node
            2  the node has room: a failover target, no slot taken
            0  the node is full
           -1  the node cannot take calls: record missing, not up, drained, no liveness key,
               capacity unknown, or an unreadable count
           -2  not looked at: enough slots and failover targets were found before it
]]
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local callId = ARGV[1]
local want, failovers = tonumber(ARGV[2]), tonumber(ARGV[3])
local ttl = tonumber(ARGV[4])

local earlier = redis.pcall('GET', KEYS[1])
if type(earlier) == 'string' then
  for other in string.gmatch(earlier, '%S+') do redis.pcall('ZREM', ARGV[5] .. other, callId) end
end

local out = { t[1], t[2] }
local taken, spare, held = 0, 0, {}
local c = (#KEYS - 1) / 3
for i = 1, c do
  local hashKey, resvKey, aliveKey = KEYS[3 * i - 1], KEYS[3 * i], KEYS[3 * i + 1]
  if taken >= want and spare >= failovers then
    out[#out + 1] = { -2, 0, 0, 0 }
  else
    local h = redis.pcall('HMGET', hashKey, 'state', 'admin', 'sessions', 'maxSessions')
    if h.err then h = {} end
    -- A reservation set damaged into another type holds nothing readable: start it afresh.
    local kind = redis.call('TYPE', resvKey).ok
    if kind ~= 'zset' and kind ~= 'none' then redis.call('DEL', resvKey) end
    redis.call('ZREMRANGEBYSCORE', resvKey, '-inf', now)
    local r = redis.call('ZCARD', resvKey)
    local s, max = tonumber(h[3]), tonumber(h[4])
    if h[1] ~= 'up' or h[2] == 'drain' or s == nil or max == nil or max <= 0
      or redis.call('EXISTS', aliveKey) == 0 then
      out[#out + 1] = { -1, s or 0, r, max or 0 }
    elseif s + r >= max then
      out[#out + 1] = { 0, s, r, max }
    elseif taken < want then
      r = r + redis.call('ZADD', resvKey, now + ttl, callId)
      taken = taken + 1
      held[#held + 1] = ARGV[5 + i]
      out[#out + 1] = { 1, s, r, max }
    else
      spare = spare + 1
      out[#out + 1] = { 2, s, r, max }
    end
  end
end

if taken > 0 then
  redis.call('SET', KEYS[1], table.concat(held, ' '), 'PX', ttl)
else
  redis.call('DEL', KEYS[1])
end
return out
