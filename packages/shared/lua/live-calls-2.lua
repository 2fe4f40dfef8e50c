--[[
  The owning monitor's record of the live calls on its node that count against limits, fenced by
  its lease. FreeSWITCH is the truth: a call counts from its channel's CHANNEL_CREATE to its
  CHANNEL_DESTROY, and a full list (FreeSWITCH's channel list, or nothing when the node is down)
  replaces whatever was recorded, so that a lost event, a takeover or a Redis that came back
  empty is corrected at the next reconcile.

  A live call's member in each of its limit sets is scored `inf`: it never lapses by itself and
  is ended only here.

  KEYS[1] lease key   (fslb:lease:<id>)
  KEYS[2] live calls  (fslb:live:<id>)  HASH call -> its limit entries, space-separated
  ARGV[1] lease token
  ARGV[2] limit set key prefix (fslb:limit:)
  ARGV[3] 'delta': the items are changes; 'full': the items are every live call of the node;
          'down': the node is down (or restarted) and has no call: none is live, and the limit
          holds of the calls reserved there in setup end too (their channel, if any, is gone,
          and no CHANNEL_CREATE will come for them)
  ARGV[4] reservation set of the node (fslb:resv:<id>)
  ARGV[5] call key prefix (fslb:call:)
  ARGV[6..] items: delta: '+<call> <entry> ...' (created) or '-<call>' (destroyed);
                   full:  '<call> <entry> ...'
            (a call is `<Call-ID>;<From tag>`, an entry `<limit id>:<key value>`; neither has spaces)

  Returns: { code, started, ended, note ... }
    code     1 done; -1 the lease is not held with this token (nothing written)
    started  calls that began counting (new to the hash)
    ended    calls that stopped counting
    note     one string per key repaired
]]
if redis.pcall('GET', KEYS[1]) ~= ARGV[1] then return { -1, 0, 0 } end

local prefix, live = ARGV[2], KEYS[2]
local notes = {}
local started, ended = 0, 0

local function split(item)
  local words = {}
  for w in string.gmatch(item, '%S+') do words[#words + 1] = w end
  return words
end

local function ending(call, entries)
  if entries then
    for e in string.gmatch(entries, '%S+') do redis.pcall('ZREM', prefix .. e, call) end
  end
  if redis.call('HDEL', live, call) == 1 then ended = ended + 1 end
end

local function starting(words)
  local call = words[1]
  local entries = table.concat(words, ' ', 2)
  if redis.call('HSET', live, call, entries) == 1 then started = started + 1 end
  for i = 2, #words do
    local key = prefix .. words[i]
    if type(redis.pcall('ZADD', key, 'inf', call)) ~= 'number' then
      redis.call('DEL', key)
      notes[#notes + 1] = key .. ': not a zset; deleted'
      redis.call('ZADD', key, 'inf', call)
    end
  end
end

-- What is recorded now; a hash damaged into another type is started afresh.
local flat = redis.pcall('HGETALL', live)
if flat.err then
  redis.call('DEL', live)
  notes[#notes + 1] = live .. ': not a hash; deleted'
  flat = {}
end

if ARGV[3] == 'down' then
  local t = redis.call('TIME')
  local now = t[1] * 1000 + math.floor(t[2] / 1000)
  local setup = redis.pcall('ZRANGEBYSCORE', ARGV[4], '(' .. now, '+inf')
  if setup.err then setup = {} end
  for _, call in ipairs(setup) do
    local held = redis.pcall('GET', ARGV[5] .. call)
    if type(held) == 'string' then
      for e in string.gmatch(held, '=(%S+)') do
        local key = prefix .. e
        if redis.pcall('ZSCORE', key, call) ~= 'inf' then redis.pcall('ZREM', key, call) end
      end
    end
  end
end

if ARGV[3] == 'full' or ARGV[3] == 'down' then
  local keep = {}
  for i = 6, #ARGV do
    local words = split(ARGV[i])
    if words[1] then
      keep[words[1]] = true
      starting(words)
    end
  end
  for i = 1, #flat, 2 do
    if not keep[flat[i]] then ending(flat[i], flat[i + 1]) end
  end
else
  local recorded = {}
  for i = 1, #flat, 2 do recorded[flat[i]] = flat[i + 1] end
  for i = 6, #ARGV do
    local item = ARGV[i]
    local op, rest = string.sub(item, 1, 1), string.sub(item, 2)
    if op == '+' then
      local words = split(rest)
      if words[1] then
        starting(words)
        recorded[words[1]] = table.concat(words, ' ', 2)
      end
    elseif op == '-' then
      local call = split(rest)[1]
      if call then
        ending(call, recorded[call])
        recorded[call] = nil
      end
    end
  end
end
return { 1, started, ended, unpack(notes) }
