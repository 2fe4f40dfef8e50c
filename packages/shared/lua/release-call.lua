--[[
  Ends every slot of a call that no node took (every target failed, or drachtio-server was lost).
  A connected call's slots are the owning monitor's to settle. Idempotent: a slot already
  settled or expired is simply not there.

  KEYS[1] call key (fslb:call:<call>)
  ARGV[1] the call: `<Call-ID>;<From tag>`
  ARGV[2] reservation set key prefix (fslb:resv:)
  ARGV[3] limit set key prefix (fslb:limit:)
  ARGV[4] k, the number of limit entries the call held
  ARGV[5 .. 4+k] those entries (`<limit id>:<key value>`): the call leaves their limit sets
  ARGV[5+k ..] node ids the proxy reserved, ended even if the call key is gone

  A call key damaged by hand (another type, node ids that cannot be) and a reservation set of
  another type are deleted, each with a note.

  Returns: { seconds, microseconds (Redis TIME), { node id, live reservations } for each node
             looked at (but one whose set this master does not hold while a Redis Cluster moves
             the slot), then a note (a string) for each key repaired }
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
    if #id <= 64 and string.match(id, '^[%w._-]+$') then
      add(id)
    elseif string.sub(id, 1, 1) ~= '=' then
      junk = true
    end
  end
  if junk then notes[#notes + 1] = KEYS[1] .. ': node ids that cannot be skipped; deleted' end
end
local k = tonumber(ARGV[4])
for i = 5 + k, #ARGV do add(ARGV[i]) end
for i = 5, 4 + k do
  local key = ARGV[3] .. ARGV[i]
  -- A call already live there is the monitor's to end.
  if redis.pcall('ZSCORE', key, call) ~= 'inf' then redis.pcall('ZREM', key, call) end
end

local out = { t[1], t[2] }
for _, id in ipairs(nodes) do
  local key = prefix .. id
  -- A set damaged into another type is found when a command fails on it, and started afresh.
  -- One this master does not hold (a Redis Cluster moving the slot) is left: the call's slot
  -- there lapses by its TTL, and the node gets no row.
  local removed = redis.pcall('ZREM', key, call)
  if type(removed) == 'number' then
    redis.pcall('ZREMRANGEBYSCORE', key, '-inf', now)
    -- While the slot moves a set emptied here reads as elsewhere: it holds none.
    local live = redis.pcall('ZCARD', key)
    out[#out + 1] = { id, type(live) == 'number' and live or 0 }
  elseif string.find(removed.err or '', '^WRONGTYPE') then
    local kind = redis.call('TYPE', key).ok
    redis.call('DEL', key)
    notes[#notes + 1] = key .. ': a ' .. kind .. ' where a zset belongs; deleted'
    out[#out + 1] = { id, 0 }
  end
end
redis.call('DEL', KEYS[1])
for _, n in ipairs(notes) do out[#out + 1] = n end
return out
