--[[
  Adds a configured node, or updates its configured fields (sip address, weight, configured cap),
  keeping its live state and its admin flag, and puts it in the nodes set. Called by every monitor
  when it loads a config, and by an owner whose write found the nodes set gone (write-node -3).

  KEYS[1] nodes set        (fslb:nodes)
  KEYS[2] node hash        (fslb:node:<id>)
  KEYS[3] version counter  (fslb:version)
  ARGV[1] node id
  ARGV[2] publish command and events channel (`PUBLISH fslb:events`, `SPUBLISH {fslb}:events`)
  ARGV[3] sip
  ARGV[4] weight
  ARGV[5] configured session cap, 0 for none

  A record created here has no `admin` field (readers take it as ''): the owning monitor's
  first write fills it, with `drain` if that is what it last read (the flag survives a Redis that
  lost its keys). A nodes set or record damaged into another type is started afresh, and a
  version counter that cannot be incremented is set again, each with a note.

  Returns: { version, note, ... }: the new version when the record was created or changed (or
  found outside the nodes set), 0 when nothing changed; one note per key repaired, naming it.
  The event carries `at` (Redis time in microseconds, as a string) beside the record.
]]
local id = ARGV[1]
local publish, channel = string.match(ARGV[2], '^(%u+) (.+)$')
local notes = {}
for i = 1, 2 do
  local want = i == 1 and 'set' or 'hash'
  local kind = redis.call('TYPE', KEYS[i]).ok
  if kind ~= want and kind ~= 'none' then
    redis.call('DEL', KEYS[i])
    notes[#notes + 1] = KEYS[i] .. ': a ' .. kind .. ' where a ' .. want .. ' belongs; deleted'
  end
end
local t = redis.call('TIME')
local now = tostring(t[1] * 1000 + math.floor(t[2] / 1000))
local created = redis.call('EXISTS', KEYS[2]) == 0
local wanted = { sip = ARGV[3], weight = ARGV[4], cap = ARGV[5] }
local changed = created
if not created then
  for k, v in pairs(wanted) do
    if redis.call('HGET', KEYS[2], k) ~= v then changed = true end
  end
end
-- A record without its membership (remove-node takes both) is one whose nodes set was damaged.
if redis.call('SADD', KEYS[1], id) == 1 and not created then
  notes[#notes + 1] = KEYS[1] .. ': ' .. id .. ' was missing; added again'
  changed = true
end
if not changed then return { 0, unpack(notes) } end

-- A lost, reset or unreadable counter must not hand out a version this node already had.
local heldVersion = tonumber(redis.call('HGET', KEYS[2], 'version')) or 0
local version = redis.pcall('INCR', KEYS[3])
if type(version) ~= 'number' or version <= heldVersion then
  if type(version) ~= 'number' then notes[#notes + 1] = KEYS[3] .. ': unreadable; set again' end
  version = heldVersion + 1
  redis.call('SET', KEYS[3], version)
end
if created then
  redis.call('HSET', KEYS[2], 'id', id, 'state', 'unknown', 'reason', 'not yet probed', 'sessions', '0',
    'maxSessions', ARGV[5], 'idleCpu', '0', 'cps', '0', 'owner', '', 'heartbeatAt', '0')
end
redis.call('HSET', KEYS[2], 'sip', wanted.sip, 'weight', wanted.weight, 'cap', wanted.cap,
  'updatedAt', now, 'version', tostring(version))

local record = {}
local flat = redis.call('HGETALL', KEYS[2])
for i = 1, #flat, 2 do record[flat[i]] = flat[i + 1] end
redis.call(publish, channel, cjson.encode({ v = 1, type = 'node', id = id, version = version,
  at = t[1] .. string.format('%06d', tonumber(t[2])), record = record }))
return { version, unpack(notes) }
