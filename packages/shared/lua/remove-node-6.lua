--[[
  Removes a node that is no longer configured: proxies stop routing to it when they see the
  `removed` event, and a monitor that still owns it can no longer write it (write-node checks
  membership of the nodes set). Its reservations go with it, and so do its live calls' places in
  the limit counters (a node no longer configured carries no call fslb can see end).

  KEYS[1] nodes set        (fslb:nodes)
  KEYS[2] node hash        (fslb:node:<id>)
  KEYS[3] liveness key     (fslb:alive:<id>)
  KEYS[4] lease key        (fslb:lease:<id>)
  KEYS[5] version counter  (fslb:version)
  KEYS[6] reservation set  (fslb:resv:<id>)
  ARGV[1] node id
  ARGV[2] publish command and events channel (`PUBLISH fslb:events`, `SPUBLISH {fslb}:events`)
  ARGV[3] '1': only a stray, an id in the nodes set without a record (added by hand: no monitor
          configures it, since adding a node writes both at once); '' for a configured removal
  ARGV[4] live calls key of the node (fslb:live:<id>)
  ARGV[5] limit set key prefix (fslb:limit:)

  Returns: the version of the removal, or 0 when the node was not there (or, for a stray, has a
  record); 1 for a stray removed (no reader holds a node without a record: no version, no event).
  A nodes set damaged into another type is left to the owners' writes to rebuild; a version
  counter that cannot be incremented is set again.
]]
local id = ARGV[1]
if ARGV[3] == '1' then
  if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
  redis.call('DEL', KEYS[3], KEYS[4], KEYS[6])
  return redis.call('SREM', KEYS[1], id)
end
local live = redis.pcall('HGETALL', ARGV[4])
if not live.err then
  for i = 1, #live, 2 do
    for e in string.gmatch(live[i + 1], '%S+') do redis.pcall('ZREM', ARGV[5] .. e, live[i]) end
  end
end
redis.call('DEL', ARGV[4])
local heldVersion = tonumber(redis.pcall('HGET', KEYS[2], 'version')) or 0
local removed = redis.pcall('SREM', KEYS[1], id)
if type(removed) ~= 'number' then removed = 0 end
local was = removed + redis.call('DEL', KEYS[2])
redis.call('DEL', KEYS[3], KEYS[4], KEYS[6])
if was == 0 then return 0 end
-- Readers drop the node only for a version above the one they hold.
local version = redis.pcall('INCR', KEYS[5])
if type(version) ~= 'number' or version <= heldVersion then
  version = heldVersion + 1
  redis.call('SET', KEYS[5], version)
end
local publish, channel = string.match(ARGV[2], '^(%u+) (.+)$')
redis.call(publish, channel, cjson.encode({ v = 1, type = 'removed', id = id, version = version }))
return version
