--[[
  The owning monitor's only write to a node: fenced by the lease, so a monitor that lost its
  lease (a long pause, a partition) cannot overwrite what the new owner wrote.
  Refreshes the liveness key on every call; bumps the version and publishes the whole record
  only when a "loud" field changed or a reservation was settled. Quiet fields (heartbeatAt) are
  stored without an event.

  Settling: FreeSWITCH counted the listed calls (their CHANNEL_CREATE carried these
  Call-IDs and From tags, joined as `<Call-ID>;<From tag>`),
  and the `sessions` written here includes them. In the same write, each call's reservations end
  on this node and on every other node it held a slot on (fslb:call:<call> lists them), so a
  call is never counted twice, nor dropped from the count between reservation and session.

  Repairing: the owner rebuilds what it owns when a key was damaged by hand (deleted, of another
  type, or holding what no reader can use), from its configuration (sip, weight, cap), what it
  sees, and the admin flag it last read; and says so in its reply, one note per key:
    - the node missing from the nodes set while its record is there is added again (remove-node
      takes the record with the membership: a node missing with its record is one removed);
    - a record missing or of another type is rebuilt; a field no reader can use (node-record.ts
      decides what a readable record is) is rewritten;
    - the liveness key is written again whatever it held (a note when it was of another type,
      without expiry, or missing while the owner's last write should have kept it);
    - a reservation set of another type starts afresh; reservations lapsing more than 10 minutes
      ahead (a slot lives a proxy's provisional timeout plus a margin) are dropped;
    - a call key of another type, or node ids in it that cannot be, are skipped and deleted (one
      this master does not hold while a Redis Cluster moves the slot is left to lapse);
    - a version counter missing, behind this node's version or unreadable is set above it.
  A repair of the record or of its membership bumps the version and publishes the record.

  KEYS[1] node hash        (fslb:node:<id>)
  KEYS[2] lease key        (fslb:lease:<id>)
  KEYS[3] liveness key     (fslb:alive:<id>)
  KEYS[4] nodes set        (fslb:nodes)
  KEYS[5] version counter  (fslb:version)
  KEYS[6] reservation set  (fslb:resv:<id>)
  ARGV[1] lease token (the value redlock stored)
  ARGV[2] monitor id (written to `owner` and to the liveness key)
  ARGV[3] liveness TTL in ms
  ARGV[4] publish command and events channel (`PUBLISH fslb:events`, `SPUBLISH {fslb}:events`)
  ARGV[5] node id
  ARGV[6] n = number of loud field/value pairs
  ARGV[7] m = number of quiet field/value pairs
  ARGV[8] reservation set key prefix (fslb:resv:)
  ARGV[9] call key prefix (fslb:call:)
  ARGV[10] configured sip, ARGV[11] configured weight, ARGV[12] configured cap (0 for none);
          '' for one the writer does not know (left as it is)
  ARGV[13] admin flag the owner last read ('' or 'drain'), restored when the record lost it
  ARGV[14] '1' when the owner's last write is recent enough that the liveness key must exist
  ARGV[15 .. 14+2n]         loud field, value, ...
  ARGV[15+2n .. 14+2n+2m]   quiet field, value, ...
  ARGV[15+2n+2m ..]         calls to settle (`<Call-ID>;<From tag>`), and advance slots
                            (`#<proxy tag>:<n>`) that calls were proxied on

  Returns: { code, admin, note, ... }
    code   the new version when something loud changed, a reservation was settled or the record
           was repaired; 0 when nothing was; -1 when the lease is not held with this token; -2
           when the node is not configured; -3 when the nodes set is gone (deleted, of another
           type, or Redis lost its keys): nothing is written, the owner writes its configured
           nodes again (upsert-node) first. After -1, -2 and -3 only notes follow the code.
    admin  the record's admin flag after the write ('' or 'drain')
    note   one string per key repaired, naming the key and what was done
  The event carries `at` (Redis time in microseconds, as a string) and `resv` (the node's
  live reservations) beside the record, so that readers can order load figures from any writer.
]]
if redis.pcall('GET', KEYS[2]) ~= ARGV[1] then return { -1 } end

local id = ARGV[5]
local notes = {}
local function note(key, what) notes[#notes + 1] = key .. ': ' .. what end
local function shown(v)
  if not v then return 'nothing' end
  if #v > 40 then v = string.sub(v, 1, 40) .. '...' end
  return string.format('%q', v)
end
-- Starts a key afresh when it holds another type than `want`; returns whether it exists now.
local function ensureType(key, want)
  local kind = redis.call('TYPE', key).ok
  if kind == want then return true end
  if kind ~= 'none' then
    redis.call('DEL', key)
    note(key, 'a ' .. kind .. ' where a ' .. want .. ' belongs; deleted')
  end
  return false
end
local changed = false

-- Membership: remove-node deletes the record and the membership together, so a node missing from
-- the set with its record gone too was removed; one missing with its record there is damage.
-- Damage is looked for on the error path: a key of another type fails its command.
local member = redis.pcall('SISMEMBER', KEYS[4], id)
if type(member) ~= 'number' then
  ensureType(KEYS[4], 'set')
  return { -3, unpack(notes) }
end
if member == 0 and redis.call('EXISTS', KEYS[4]) == 0 then return { -3, unpack(notes) } end
if member == 0 then
  if redis.call('EXISTS', KEYS[1]) == 0 then return { -2 } end
  redis.call('SADD', KEYS[4], id)
  note(KEYS[4], id .. ' was missing; added again')
  changed = true
end

local alivePttl = redis.call('PTTL', KEYS[3])
if alivePttl == -2 then
  if ARGV[14] == '1' then note(KEYS[3], 'missing before its time; written again') end
elseif alivePttl == -1 then
  local aliveKind = redis.call('TYPE', KEYS[3]).ok
  if aliveKind ~= 'string' then
    note(KEYS[3], 'a ' .. aliveKind .. ' where a string belongs; written again')
  else
    note(KEYS[3], 'no expiry; written again with one')
  end
end
redis.call('SET', KEYS[3], ARGV[2], 'PX', ARGV[3])

-- The record as it is, then what a reader could not use in it (see node-record.ts).
local old = {}
local oldFlat = redis.pcall('HGETALL', KEYS[1])
if oldFlat.err then
  ensureType(KEYS[1], 'hash')
else
  for i = 1, #oldFlat, 2 do old[oldFlat[i]] = oldFlat[i + 1] end
end
-- The record after this write, kept beside the writes so that the event needs no read back.
local record = {}
for f, v in pairs(old) do record[f] = v end
local function whole(v) return v ~= nil and #v <= 15 and string.match(v, '^%d+$') ~= nil end
local function decimal(v) return v ~= nil and (whole(v) or string.match(v, '^%d+%.%d+$') ~= nil) end
local fix = {}
if next(old) == nil then
  note(KEYS[1], 'missing or unreadable; rebuilt from the configuration and what the owner sees')
  fix = { id = id, sip = ARGV[10], weight = ARGV[11], cap = ARGV[12], admin = ARGV[13] }
  if ARGV[13] == 'drain' then note(KEYS[1], 'admin restored to drain (as the owner last read it)') end
else
  local readable = {
    { 'id', old.id == id, id },
    { 'sip', old.sip ~= nil and old.sip ~= '', ARGV[10] },
    { 'state', old.state == 'up' or old.state == 'down' or old.state == 'draining' or old.state == 'unknown' },
    { 'sessions', whole(old.sessions) },
    { 'maxSessions', whole(old.maxSessions) },
    { 'cap', old.cap == nil or whole(old.cap), ARGV[12] },
    { 'idleCpu', old.idleCpu == nil or decimal(old.idleCpu) },
    { 'cps', old.cps == nil or decimal(old.cps) },
    { 'weight', decimal(old.weight) and tonumber(old.weight) > 0, ARGV[11] },
    { 'admin', old.admin == '' or old.admin == 'drain', ARGV[13] },
    { 'heartbeatAt', old.heartbeatAt == nil or whole(old.heartbeatAt) },
    { 'updatedAt', whole(old.updatedAt) },
    { 'version', whole(old.version) },
  }
  for _, f in ipairs(readable) do
    local field, ok, value = f[1], f[2], f[3]
    if field == 'admin' and old.admin == nil then
      -- Missing, not unreadable: a record created from the configuration has no flag yet.
      fix.admin = ARGV[13]
      if ARGV[13] == 'drain' then
        note(KEYS[1], 'admin restored to drain (as the owner last read it)')
        changed = true
      end
    elseif not ok then
      -- Fields the owner measures are rewritten below; updatedAt and version with the version bump.
      if value ~= nil then fix[field] = value end
      note(KEYS[1], field .. ' was ' .. shown(old[field]) .. '; rewritten')
      changed = true
    end
  end
end
for f, v in pairs(fix) do
  -- A configured value passed as '' is not known to this writer: left as it is.
  if v ~= '' or f == 'admin' then
    redis.call('HSET', KEYS[1], f, v)
    record[f] = v
    changed = true
  end
end

local n, m = tonumber(ARGV[6]), tonumber(ARGV[7])
local loudEnd = 14 + 2 * n
local fieldsEnd = loudEnd + 2 * m
if old.owner ~= ARGV[2] then changed = true end
for i = 15, loudEnd, 2 do
  if old[ARGV[i]] ~= ARGV[i + 1] then changed = true end
end
if fieldsEnd >= 15 then redis.call('HSET', KEYS[1], unpack(ARGV, 15, fieldsEnd)) end
for i = 15, fieldsEnd, 2 do record[ARGV[i]] = ARGV[i + 1] end

local t = redis.call('TIME')
local nowMs = t[1] * 1000 + math.floor(t[2] / 1000)
local far = redis.pcall('ZREMRANGEBYSCORE', KEYS[6], '(' .. (nowMs + 600000), '+inf')
if type(far) ~= 'number' then
  ensureType(KEYS[6], 'zset')
  far = 0
end
if far > 0 then
  note(KEYS[6], far .. ' reservations lapsing more than 10 minutes ahead; removed')
  changed = true
end

for i = fieldsEnd + 1, #ARGV do
  local callId = ARGV[i]
  if redis.call('ZREM', KEYS[6], callId) == 1 then changed = true end
  -- A proxy's advance slot (`#...`) is a member of this set only: no call key names it.
  local callKey = ARGV[9] .. callId
  local held = string.sub(callId, 1, 1) ~= '#' and redis.pcall('GET', callKey)
  if type(held) == 'table' and not string.find(held.err or '', '^WRONGTYPE') then
    -- Not on this master (a Redis Cluster moving the slot has already moved it): left to lapse
    -- by its TTL, as the call's slots elsewhere do; nothing here is damaged.
    held = false
  elseif type(held) == 'table' then
    note(callKey, 'not a string; deleted')
  elseif held then
    local junk = false
    for other in string.gmatch(held, '%S+') do
      if string.sub(other, 1, 1) == '=' then
        -- A limit counter: the owner's live-calls write counts the call there.
      elseif #other > 64 or not string.match(other, '^[%w._-]+$') then
        junk = true
      elseif other ~= id then
        -- Another node's set may be damaged too: its own writers start it afresh.
        redis.pcall('ZREM', ARGV[8] .. other, callId)
      end
    end
    if junk then note(callKey, 'node ids that cannot be in ' .. shown(held) .. ' skipped; deleted') end
  end
  if held ~= false then redis.call('DEL', callKey) end
end

if not changed then
  return { 0, record.admin or '', unpack(notes) }
end

redis.call('ZREMRANGEBYSCORE', KEYS[6], '-inf', nowMs)
local resv = redis.call('ZCARD', KEYS[6])
-- A lost, reset or unreadable counter must not hand out a version this node already had.
local heldVersion = tonumber(old.version) or 0
local version = redis.pcall('INCR', KEYS[5])
if type(version) ~= 'number' then
  note(KEYS[5], 'unreadable; set above ' .. id .. "'s version")
  version = heldVersion + 1
  redis.call('SET', KEYS[5], version)
elseif version <= heldVersion then
  note(KEYS[5], 'behind ' .. id .. "'s version (lost or reset); set above it")
  version = heldVersion + 1
  redis.call('SET', KEYS[5], version)
end
redis.call('HSET', KEYS[1], 'owner', ARGV[2], 'updatedAt', tostring(nowMs), 'version', tostring(version))
record.owner, record.updatedAt, record.version = ARGV[2], tostring(nowMs), tostring(version)
local publish, channel = string.match(ARGV[4], '^(%u+) (.+)$')
redis.call(publish, channel, cjson.encode({ v = 1, type = 'node', id = id, version = version,
  at = t[1] .. string.format('%06d', tonumber(t[2])), resv = resv, record = record }))
return { version, record.admin or '', unpack(notes) }
