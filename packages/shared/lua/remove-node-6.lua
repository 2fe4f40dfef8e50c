--[[
  Removes a node that is no longer configured: proxies stop routing to it when they see the
  `removed` event, and a monitor that still owns it can no longer write it (write-node checks
  membership of the nodes set). Its reservations go with it.

  KEYS[1] nodes set        (fslb:nodes)
  KEYS[2] node hash        (fslb:node:<id>)
  KEYS[3] liveness key     (fslb:alive:<id>)
  KEYS[4] lease key        (fslb:lease:<id>)
  KEYS[5] version counter  (fslb:version)
  KEYS[6] reservation set  (fslb:resv:<id>)
  ARGV[1] node id
  ARGV[2] events channel

  Returns: the version of the removal, or 0 when the node was not there.
]]
local id = ARGV[1]
local was = redis.call('SREM', KEYS[1], id) + redis.call('DEL', KEYS[2])
redis.call('DEL', KEYS[3], KEYS[4], KEYS[6])
if was == 0 then return 0 end
local version = redis.call('INCR', KEYS[5])
redis.call('PUBLISH', ARGV[2], cjson.encode({ v = 1, type = 'removed', id = id, version = version }))
return version
