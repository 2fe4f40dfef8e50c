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

  Pools: each candidate belongs to a group (a pool of the call's route, in the route's order).
  The slot is taken in the first group with a node that has room, and failover targets come from
  that group only, so a call spills over to the next pool only when the ones before it are full.

  Limits: a call may count against limit counters (cluster-wide per tenant or trunk). They are
  checked after a node with room is found and before anything is taken: a call over a limit
  takes no slot and holds nothing, and a call with no room takes no limit. `maxCalls` counts the
  counter's calls in setup (scored by when their hold lapses) and live (scored `inf` by the
  monitor that owns their node); `maxCps` counts the calls admitted in the last 1000 ms.

  KEYS[1]       call key         (fslb:call:<call>)
  KEYS[3i-1]    node hash        (fslb:node:<id>)   of candidate i = 1..c
  KEYS[3i]      reservation set  (fslb:resv:<id>)   of candidate i
  KEYS[3i+1]    liveness key     (fslb:alive:<id>)  of candidate i
  KEYS[3c+2j]   limit set        (fslb:limit:<entry>) of limit j = 1..l
  KEYS[3c+2j+1] rate set         (fslb:rate:<entry>)  of limit j
  ARGV[1] the call: `<Call-ID>;<From tag>`
  ARGV[2] slots to take at most (1: the chosen node)
  ARGV[3] failover targets wanted at most after the slots (0 when the proxy names them from its
          view: then only the slot candidates are sent)
  ARGV[4] TTL of a slot, ms
  ARGV[5] reservation set key prefix (fslb:resv:), for the slots of an earlier attempt; empty
          when the call is a first attempt (nothing to look up)
  ARGV[6] '1': take the slots in the proxy's order (affinity: its first choice must win while
          it has room); '0': least loaded first
  ARGV[7] c, the number of candidates
  ARGV[8] how long a limit holds a call in setup, ms (it outlasts the slot: the node's monitor
          makes it live when FreeSWITCH creates the channel)
  ARGV[8+i] node id of candidate i
  ARGV[8+c+i] group (pool order, 1 first) of candidate i
  ARGV[8+2c+2j-1], ARGV[8+2c+2j] maxCalls and maxCps of limit j (0: none)
  ARGV[9+2c+2l] limit set key prefix (fslb:limit:), to name the counters in the call key

  The call key lists the node ids the call holds slots on, then its limit counters, each after
  '=' (`fs1 =tenant:acme`); it lives as long as the slot, or the limit hold when there is one.

  Returns: { seconds, microseconds (Redis TIME), { limit, kind, count },
             { status, sessions, reservations, maxSessions } for each candidate in order,
             then a note (a string) for each key repaired }
    limit  0, or the index j of the first limit the call is over (nothing was taken)
    kind   1 maxCalls, 2 maxCps
    count  the counter's calls (or calls in the last second) without this one
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
local c = tonumber(ARGV[7])
local hold = tonumber(ARGV[8])
local l = (#KEYS - 1 - 3 * c) / 2

local earlier = ARGV[5] ~= '' and redis.pcall('GET', KEYS[1])
if type(earlier) == 'string' then
  for other in string.gmatch(earlier, '%S+') do
    if string.sub(other, 1, 1) ~= '=' then redis.pcall('ZREM', ARGV[5] .. other, call) end
  end
end

local rows, room, notes = {}, {}, {}
-- A set damaged into another type holds nothing readable: start it afresh.
local function zsetOnly(key)
  local kind = redis.call('TYPE', key).ok
  if kind ~= 'zset' and kind ~= 'none' then
    redis.call('DEL', key)
    notes[#notes + 1] = key .. ': a ' .. kind .. ' where a zset belongs; deleted'
  end
end
local group
for i = 1, c do
  local hashKey, resvKey, aliveKey = KEYS[3 * i - 1], KEYS[3 * i], KEYS[3 * i + 1]
  local h = redis.pcall('HMGET', hashKey, 'state', 'admin', 'sessions', 'maxSessions', 'weight')
  if h.err then h = {} end
  -- Live reservations only: lapsed members stay until the node's owner sweeps them (every write).
  local r = redis.pcall('ZCOUNT', resvKey, '(' .. now, '+inf')
  if type(r) ~= 'number' then
    zsetOnly(resvKey)
    r = 0
  end
  local s, max = tonumber(h[3]), tonumber(h[4])
  local weight = tonumber(h[5]) or 1
  if weight <= 0 then weight = 1 end
  local g = tonumber(ARGV[8 + c + i]) or 1
  if not h[1] or h[1] == 'unknown' then
    rows[i] = { -3, s or 0, r, max or 0 }
  elseif h[1] ~= 'up' or h[2] == 'drain' or s == nil or max == nil or max <= 0
    or redis.call('EXISTS', aliveKey) == 0 then
    rows[i] = { -1, s or 0, r, max or 0 }
  elseif s + r >= max then
    rows[i] = { 0, s, r, max }
  else
    rows[i] = { -2, s, r, max }
    room[#room + 1] = { i = i, g = g, score = (s + r) / (max * weight) }
    if group == nil or g < group then group = g end
  end
end

-- Limits, once a pool has room: the first counter at its cap refuses the call.
local verdict = { 0, 0, 0 }
if group ~= nil then
  for j = 1, l do
    local setKey, rateKey = KEYS[3 * c + 2 * j], KEYS[3 * c + 2 * j + 1]
    local maxCalls, maxCps = tonumber(ARGV[7 + 2 * c + 2 * j]), tonumber(ARGV[8 + 2 * c + 2 * j])
    if type(redis.pcall('ZREMRANGEBYSCORE', setKey, '-inf', now)) ~= 'number' then zsetOnly(setKey) end
    if maxCalls > 0 then
      local n = redis.call('ZCARD', setKey)
      if redis.call('ZSCORE', setKey, call) then n = n - 1 end
      if n >= maxCalls then verdict = { j, 1, n } break end
    end
    if maxCps > 0 then
      if type(redis.pcall('ZREMRANGEBYSCORE', rateKey, '-inf', now - 1000)) ~= 'number' then zsetOnly(rateKey) end
      local n = redis.call('ZCARD', rateKey)
      if redis.call('ZSCORE', rateKey, call) then n = n - 1 end
      if n >= maxCps then verdict = { j, 2, n } break end
    end
  end
  if verdict[1] > 0 then
    -- Over a limit: nothing is taken, and an earlier attempt's hold on the counters ends too.
    group = nil
    for j = 1, l do redis.call('ZREM', KEYS[3 * c + 2 * j], call) end
  end
end

-- The slots go to the least loaded by Redis' own counts, which include every proxy's
-- reservations: a burst from many proxies spreads as if one proxy had sent it. Ties keep the
-- proxy's order (which it randomizes among near-equals). Only the chosen pool's nodes take part.
local taken, held, chosen = 0, {}, {}
while group ~= nil and taken < want do
  local best
  for _, cand in ipairs(room) do
    if cand.g == group and not chosen[cand.i] and (best == nil or (not inOrder and cand.score < best.score)) then
      best = cand
    end
  end
  if best == nil then break end
  chosen[best.i] = true
  local row = rows[best.i]
  row[1] = 1
  row[3] = row[3] + redis.call('ZADD', KEYS[3 * best.i], now + ttl, call)
  held[#held + 1] = ARGV[8 + best.i]
  taken = taken + 1
end
-- Failover targets: the chosen pool's other candidates with room, in the proxy's order.
local spare = 0
for _, cand in ipairs(room) do
  if spare >= failovers then break end
  if cand.g == group and not chosen[cand.i] then
    rows[cand.i][1] = 2
    spare = spare + 1
  end
end

if taken > 0 then
  -- The call key names the nodes, then the limit counters (each after '='), so that the owner of
  -- a node that goes down can end the holds of the calls in setup there.
  local entries = {}
  for j = 1, l do entries[j] = '=' .. string.sub(KEYS[3 * c + 2 * j], #ARGV[9 + 2 * c + 2 * l] + 1) end
  if l > 0 then
    redis.call('SET', KEYS[1], table.concat(held, ' ') .. ' ' .. table.concat(entries, ' '), 'PX', hold)
  else
    redis.call('SET', KEYS[1], table.concat(held, ' '), 'PX', ttl)
  end
  for j = 1, l do
    local setKey, rateKey = KEYS[3 * c + 2 * j], KEYS[3 * c + 2 * j + 1]
    -- A call already live on the counter (its challenge retry) keeps its `inf`.
    local score = redis.call('ZSCORE', setKey, call)
    if score ~= 'inf' then redis.call('ZADD', setKey, now + hold, call) end
    if tonumber(ARGV[8 + 2 * c + 2 * j]) > 0 then
      redis.call('ZADD', rateKey, now, call)
      redis.call('PEXPIRE', rateKey, 2000)
    end
  end
else
  redis.call('DEL', KEYS[1])
end

local out = { t[1], t[2], verdict }
for i = 1, c do out[#out + 1] = rows[i] end
for _, n in ipairs(notes) do out[#out + 1] = n end
return out
