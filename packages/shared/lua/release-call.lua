--[[
  Ends every slot of a call that no node took (every target failed, or drachtio-server was lost).
  A connected call's slots are the owning monitor's to settle. Idempotent: a slot already
  settled or expired is simply not there.

  KEYS[1] call key (fslb:call:<callId>)
  ARGV[1] Call-ID
  ARGV[2] reservation set key prefix (fslb:resv:)
  ARGV[3..] node ids the proxy reserved, ended even if the call key is gone

  Returns: { seconds, microseconds (Redis TIME), { node id, live reservations } for each node
             looked at }
]]
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local callId, prefix = ARGV[1], ARGV[2]

local nodes, seen = {}, {}
local function add(id)
  if id ~= '' and not seen[id] then
    seen[id] = true
    nodes[#nodes + 1] = id
  end
end
local held = redis.call('GET', KEYS[1])
if held then for id in string.gmatch(held, '%S+') do add(id) end end
for i = 3, #ARGV do add(ARGV[i]) end

local out = { t[1], t[2] }
for _, id in ipairs(nodes) do
  local key = prefix .. id
  redis.call('ZREM', key, callId)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
  out[#out + 1] = { id, redis.call('ZCARD', key) }
end
redis.call('DEL', KEYS[1])
return out
