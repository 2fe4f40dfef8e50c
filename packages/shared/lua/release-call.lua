--[[
  Ends a call's reservations when the proxy learns how the call went: every slot it holds except
  the one on the node that answered it (that one is the monitor's to settle when FreeSWITCH
  counts the call, or lapses by its TTL). Idempotent: a slot already settled or expired is
  simply not there.

  KEYS[1] call key (fslb:call:<callId>)
  ARGV[1] Call-ID
  ARGV[2] reservation set key prefix (fslb:resv:)
  ARGV[3] id of the node whose slot stays, or '' to end them all
  ARGV[4..] node ids the proxy reserved, ended even if the call key is gone

  Returns: { seconds, microseconds (Redis TIME), { node id, live reservations } for each node
             looked at }
]]
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local callId, prefix, keep = ARGV[1], ARGV[2], ARGV[3]

local nodes, seen = {}, {}
local function add(id)
  if id ~= '' and not seen[id] then
    seen[id] = true
    nodes[#nodes + 1] = id
  end
end
local held = redis.call('GET', KEYS[1])
if held then for id in string.gmatch(held, '%S+') do add(id) end end
for i = 4, #ARGV do add(ARGV[i]) end

local out = { t[1], t[2] }
for _, id in ipairs(nodes) do
  local key = prefix .. id
  if id ~= keep then redis.call('ZREM', key, callId) end
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
  out[#out + 1] = { id, redis.call('ZCARD', key) }
end
if keep ~= '' and held and seen[keep] then
  redis.call('SET', KEYS[1], keep, 'KEEPTTL')
else
  redis.call('DEL', KEYS[1])
end
return out
