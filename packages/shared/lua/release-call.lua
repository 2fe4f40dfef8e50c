--[[
  Ends every slot of a call that no node took (every target failed, or drachtio-server was lost).
  A connected call's slots are the owning monitor's to settle. Idempotent: a slot already
  settled or expired is simply not there.

  KEYS[1] call key (fslb:call:<call>)
  ARGV[1] the call: `<Call-ID>;<From tag>`
  ARGV[2] reservation set key prefix (fslb:resv:)
  ARGV[3..] node ids the proxy reserved, ended even if the call key is gone

  A call key damaged by hand (another type, node ids that cannot be) and a reservation set of
  another type are deleted, each with a note.

  Returns: { seconds, microseconds (Redis TIME), { node id, live reservations } for each node
             looked at, then a note (a string) for each key repaired }
]]
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local call, prefix = ARGV[1], ARGV[2]

local nodes, seen, notes = {}, {}, {}
local function add(id)
  if id ~= '' and not seen[id] then
    seen[id] = true
    nodes[#nodes + 1] = id
  end
end
local held = redis.pcall('GET', KEYS[1])
if type(held) == 'table' then
  notes[#notes + 1] = KEYS[1] .. ': not a string; deleted'
elseif held then
  local junk = false
  for id in string.gmatch(held, '%S+') do
    if #id <= 64 and string.match(id, '^[%w._-]+$') then add(id) else junk = true end
  end
  if junk then notes[#notes + 1] = KEYS[1] .. ': node ids that cannot be skipped; deleted' end
end
for i = 3, #ARGV do add(ARGV[i]) end

local out = { t[1], t[2] }
for _, id in ipairs(nodes) do
  local key = prefix .. id
  local kind = redis.call('TYPE', key).ok
  if kind ~= 'zset' and kind ~= 'none' then
    redis.call('DEL', key)
    notes[#notes + 1] = key .. ': a ' .. kind .. ' where a zset belongs; deleted'
  end
  redis.call('ZREM', key, call)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
  out[#out + 1] = { id, redis.call('ZCARD', key) }
end
redis.call('DEL', KEYS[1])
for _, n in ipairs(notes) do out[#out + 1] = n end
return out
