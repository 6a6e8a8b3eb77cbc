-- Cluster mode: the root, on its own slot only.
-- KEYS: the root. ARGV: namespace, '+' to list it or '-' to unlist it. Publishes the event.
-- Returns 1 if the root changed, 0 if the namespace was already listed; unlisting one that is
-- not listed is NOTFOUND.
local ns = ARGV[1]
local list, err = read_index(KEYS[1], 'namespaces')
if err then return err end
list = list or {}
if ARGV[2] == '+' then
  if contains(list, ns) then return 0 end
  table.insert(list, ns)
  redis.call('SET', KEYS[1], encode_index('namespaces', list))
  event(ns, nil, 'create_namespace')
  return 1
end
if not contains(list, ns) then return fail('NOTFOUND', ns) end
redis.call('SET', KEYS[1], encode_index('namespaces', without(list, { [ns] = true })))
event(ns, nil, 'delete_namespace')
return 1
