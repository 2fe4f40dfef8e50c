--[[
  Advance slots: a proxy holds a few slots per node ahead of time, so that most INVITEs take one
  at once without a round trip to Redis. An advance slot is a member of the node's reservation
  set like any call's slot (`#<proxy tag>:<n>`, where no Call-ID can put a '#'), so every count
  that guards capacity counts it: no node is ever handed more calls and slots than it takes,
  however many proxies hold slots there. The proxy names the slot a call used in the INVITE it
  proxies (header X-Fslb-Slot), and the node's monitor settles that member when FreeSWITCH counts
  the call, as it settles a reserved call's.

  One call per proxy does the whole book-keeping for the nodes listed, in this order per node:
    - slots the proxy spent on calls that no node took are removed (`drop`);
    - slots in use by calls still in setup are refreshed if still there (`busy`, ZADD XX);
    - unused slots the proxy holds are refreshed, and those no longer there are reported
      (`keep`: lapsed, or Redis lost its state);
    - new slots are added up to what the proxy wants (`want`), within a share of the node's room: the
      proxy holds at most (room not counting its own unused slots - margin) / ARGV[2], where the
      margin is max(4 x share, maxSessions / share). So as a node fills, what each proxy may hold
      shrinks to nothing well before it is full, and calls near capacity take their slot in
      `reserve-call`, exactly, with no slot stranded in another proxy's hands. Unused slots above that share are not removed here (a call may
      have just taken one); the proxy drops them in its next call.
  Nothing is granted on a node that cannot take calls (not up, drained, no liveness key,
  capacity unknown) or that Redis has no monitor's record of.

  KEYS[3i-2] node hash (fslb:node:<id>), KEYS[3i-1] reservation set (fslb:resv:<id>),
  KEYS[3i] liveness key (fslb:alive:<id>), for node i = 1..n
  ARGV[1] TTL of a slot, ms (each slot named here is scored now + TTL)
  ARGV[2] share: a proxy holds at most the node's room / share in advance
  ARGV[3] member prefix (`#<proxy tag>:`)
  ARGV[4] n, the number of nodes
  ARGV[5..] for each node in turn: want, first number for new members, held (unused slots the
            proxy holds there), #drop, #busy, #keep, then the drop, busy and keep members (`keep`
            may name only some of the held ones, or none: those named are refreshed and checked)

  Returns: { seconds, microseconds (Redis TIME),
             { status, sessions, reservations, maxSessions, allowed, granted, missing... } per node,
             then a note (a string) for each key repaired }
    status        1 can take calls; 0 full; -1 cannot take calls; -3 no monitor's record
    reservations  live members of the reservation set after this call (every proxy's slots)
    allowed       how many unused slots the proxy may hold there now, whatever it wants
    granted       new members added: prefix .. (first + 0 .. granted - 1)
    missing       1-based indices into `keep` of members no longer there
]]
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local score = now + tonumber(ARGV[1])
local share = tonumber(ARGV[2])
local prefix = ARGV[3]
local n = tonumber(ARGV[4])

local notes = {}
-- A reservation set of another type holds nothing readable: started afresh.
local function repair(key)
  local kind = redis.call('TYPE', key).ok
  if kind ~= 'zset' and kind ~= 'none' then
    redis.call('DEL', key)
    notes[#notes + 1] = key .. ': a ' .. kind .. ' where a zset belongs; deleted'
  end
end

local out = { t[1], t[2] }
local p = 5
for i = 1, n do
  local hashKey, resvKey, aliveKey = KEYS[3 * i - 2], KEYS[3 * i - 1], KEYS[3 * i]
  local want, first, heldArg = tonumber(ARGV[p]), tonumber(ARGV[p + 1]), tonumber(ARGV[p + 2])
  local nd, nb, nk = tonumber(ARGV[p + 3]), tonumber(ARGV[p + 4]), tonumber(ARGV[p + 5])
  local d0, b0, k0 = p + 6, p + 6 + nd, p + 6 + nd + nb
  p = k0 + nk

  if nd > 0 and type(redis.pcall('ZREM', resvKey, unpack(ARGV, d0, b0 - 1))) ~= 'number' then
    repair(resvKey)
  end
  if nb > 0 then
    local args = {}
    for j = b0, k0 - 1 do args[#args + 1] = score; args[#args + 1] = ARGV[j] end
    if type(redis.pcall('ZADD', resvKey, 'XX', unpack(args))) ~= 'number' then repair(resvKey) end
  end
  local missing = {}
  if nk > 0 then
    local args = {}
    for j = k0, p - 1 do args[#args + 1] = score; args[#args + 1] = ARGV[j] end
    local changed = redis.pcall('ZADD', resvKey, 'XX', 'CH', unpack(args))
    if type(changed) ~= 'number' then
      repair(resvKey)
      for j = 1, nk do missing[j] = j end
    elseif changed < nk then
      -- Fewer changed than named: some are gone (or were scored in this same millisecond).
      local scores = redis.call('ZMSCORE', resvKey, unpack(ARGV, k0, p - 1))
      for j = 1, nk do
        if not scores[j] then missing[#missing + 1] = j end
      end
    end
  end
  local held = heldArg - #missing
  if held < 0 then held = 0 end

  local h = redis.pcall('HMGET', hashKey, 'state', 'admin', 'sessions', 'maxSessions')
  if h.err then h = {} end
  local r = redis.pcall('ZCOUNT', resvKey, '(' .. now, '+inf')
  if type(r) ~= 'number' then
    repair(resvKey)
    r = 0
  end
  local s, max = tonumber(h[3]), tonumber(h[4])
  local status, allowed, granted = 1, 0, 0
  if not h[1] or h[1] == 'unknown' then
    status = -3
  elseif h[1] ~= 'up' or h[2] == 'drain' or s == nil or max == nil or max <= 0
    or redis.call('EXISTS', aliveKey) == 0 then
    status = -1
  else
    if s + r >= max then status = 0 end
    -- Room kept free of advance slots: a node this close to full takes its calls one by one.
    local margin = math.max(4 * share, math.ceil(max / share))
    allowed = math.floor((max - s - r + held - margin) / share)
    if allowed < 0 then allowed = 0 end
    local target = want < allowed and want or allowed
    if target > held then
      local args = {}
      for j = 0, target - held - 1 do
        args[#args + 1] = score
        args[#args + 1] = prefix .. (first + j)
      end
      granted = redis.call('ZADD', resvKey, 'NX', unpack(args))
      r = r + granted
    end
  end
  local row = { status, s or 0, r, max or 0, allowed, granted }
  for _, j in ipairs(missing) do row[#row + 1] = j end
  out[#out + 1] = row
end
for _, note in ipairs(notes) do out[#out + 1] = note end
return out
