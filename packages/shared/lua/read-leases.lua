--[[
  The claim round's look at the leases of the nodes a monitor does not own: which are held.
  redlock always writes a lease with an expiry of at most the lease TTL, so a lease key without
  one, or with one much further away (a value set by hand, another type), is no lease: it would
  keep its node unowned, unwatched and soon dark for ever or for long. It is deleted, and the
  node is free to claim.

  KEYS[i] lease key (fslb:lease:<id>) of node i
  ARGV[1] the longest a lease can have left, ms: the longest lease TTL the config allows, not
          the caller's own, so that monitors whose TTLs differ leave each other's leases alone

  Returns: { held, ..., note, ... }: 1 (held) or 0 (free) for each key in order, then one note
  per key deleted, naming it.
]]
local held, notes = {}, {}
for i, key in ipairs(KEYS) do
  local ttl = redis.call('PTTL', key)
  if ttl == -1 or ttl > tonumber(ARGV[1]) then
    local expiry = ttl == -1 and 'without expiry' or 'expiring in ' .. ttl .. ' ms'
    notes[#notes + 1] = key .. ': a ' .. redis.call('TYPE', key).ok .. ' ' .. expiry .. ', not a lease; deleted'
    redis.call('DEL', key)
    ttl = -2
  end
  held[i] = ttl == -2 and 0 or 1
end
for _, n in ipairs(notes) do held[#held + 1] = n end
return held
