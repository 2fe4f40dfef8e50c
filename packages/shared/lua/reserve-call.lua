--[[
  Reserves a slot for one call, atomically, on the least loaded of the proxy's candidates that
  is eligible and has room: sessions + live reservations < maxSessions, scored by
  (sessions + reservations) / (maxSessions x weight), ties to the earlier candidate. However many
  proxies run this at once, a node never holds more calls and reservations than it takes. Other
  candidates with room are named as failover targets, in the proxy's order (serial forking
  reaches one only when the chosen node failed); they take no slot, so that failovers that
  rarely happen never hold capacity that first choices need.

  The slot lapses by itself after ARGV[4] ms. Slots that an earlier attempt of the same call
  still holds (an INVITE sent again with credentials after a 401/407, which keeps its Call-ID
  and From tag) end first, so the retry takes over the slot its challenge kept. A reservation set
  damaged into another type is deleted and started afresh.

  KEYS[1]       call key         (fslb:call:<call>)
  KEYS[3i-1]    node hash        (fslb:node:<id>)   of candidate i = 1..c
  KEYS[3i]      reservation set  (fslb:resv:<id>)   of candidate i
  KEYS[3i+1]    liveness key     (fslb:alive:<id>)  of candidate i
  ARGV[1] the call: `<Call-ID>;<From tag>`
  ARGV[2] slots to take at most (1: the chosen node)
  ARGV[3] failover targets wanted at most after the slots
  ARGV[4] TTL of a slot, ms
  ARGV[5] reservation set key prefix (fslb:resv:), for the slots of an earlier attempt
  ARGV[6] '1': take the slots in the proxy's order (affinity: its first choice must win while
          it has room); '0': least loaded first
  ARGV[6+i] node id of candidate i

  Returns: { seconds, microseconds (Redis TIME), { status, sessions, reservations, maxSessions }
             for each candidate in order, then a note (a string) for each key repaired }
    status  1  a slot was taken on the node
            2  the node has room: a failover target, no slot taken
            0  the node is full
           -1  the node cannot take calls: not up, drained, no liveness key, capacity unknown,
               or an unreadable count
           -3  Redis has no record of the node that a monitor wrote: none at all, or one only
               just created from the configuration (state unknown). For a node the proxy saw
               routable, Redis lost its state (a restart without persistence, a FLUSH).
           -2  the node has room but is not used: enough slots and failover targets without it
]]
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local call = ARGV[1]
local want, failovers = tonumber(ARGV[2]), tonumber(ARGV[3])
local ttl = tonumber(ARGV[4])
local inOrder = ARGV[6] == '1'

local earlier = redis.pcall('GET', KEYS[1])
if type(earlier) == 'string' then
  for other in string.gmatch(earlier, '%S+') do redis.pcall('ZREM', ARGV[5] .. other, call) end
end

local out = { t[1], t[2] }
local c = (#KEYS - 1) / 3
local rows, room, notes = {}, {}, {}
for i = 1, c do
  local hashKey, resvKey, aliveKey = KEYS[3 * i - 1], KEYS[3 * i], KEYS[3 * i + 1]
  local h = redis.pcall('HMGET', hashKey, 'state', 'admin', 'sessions', 'maxSessions', 'weight')
  if h.err then h = {} end
  -- A reservation set damaged into another type holds nothing readable: start it afresh.
  local kind = redis.call('TYPE', resvKey).ok
  if kind ~= 'zset' and kind ~= 'none' then
    redis.call('DEL', resvKey)
    notes[#notes + 1] = resvKey .. ': a ' .. kind .. ' where a zset belongs; deleted'
  end
  redis.call('ZREMRANGEBYSCORE', resvKey, '-inf', now)
  local r = redis.call('ZCARD', resvKey)
  local s, max = tonumber(h[3]), tonumber(h[4])
  local weight = tonumber(h[5]) or 1
  if weight <= 0 then weight = 1 end
  if not h[1] or h[1] == 'unknown' then
    rows[i] = { -3, s or 0, r, max or 0 }
  elseif h[1] ~= 'up' or h[2] == 'drain' or s == nil or max == nil or max <= 0
    or redis.call('EXISTS', aliveKey) == 0 then
    rows[i] = { -1, s or 0, r, max or 0 }
  elseif s + r >= max then
    rows[i] = { 0, s, r, max }
  else
    rows[i] = { -2, s, r, max }
    room[#room + 1] = { i = i, score = (s + r) / (max * weight) }
  end
end

-- The slots go to the least loaded by Redis' own counts, which include every proxy's
-- reservations: a burst from many proxies spreads as if one proxy had sent it. Ties keep the
-- proxy's order (which it randomizes among near-equals).
local taken, held, chosen = 0, {}, {}
while taken < want do
  local best
  for _, cand in ipairs(room) do
    if not chosen[cand.i] and (best == nil or (not inOrder and cand.score < best.score)) then best = cand end
  end
  if best == nil then break end
  chosen[best.i] = true
  local row = rows[best.i]
  row[1] = 1
  row[3] = row[3] + redis.call('ZADD', KEYS[3 * best.i], now + ttl, call)
  held[#held + 1] = ARGV[6 + best.i]
  taken = taken + 1
end
-- Failover targets: the other candidates with room, in the proxy's order.
local spare = 0
for _, cand in ipairs(room) do
  if spare >= failovers then break end
  if not chosen[cand.i] then
    rows[cand.i][1] = 2
    spare = spare + 1
  end
end
for i = 1, c do out[#out + 1] = rows[i] end
for _, n in ipairs(notes) do out[#out + 1] = n end

if taken > 0 then
  redis.call('SET', KEYS[1], table.concat(held, ' '), 'PX', ttl)
else
  redis.call('DEL', KEYS[1])
end
return out
