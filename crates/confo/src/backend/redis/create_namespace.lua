-- KEYS: root, namespace key. ARGV: namespace. Returns 1 if created, 0 if it existed.
local list, err = read_index(KEYS[1], 'namespaces')
if err then return err end
list = list or {}
if contains(list, ARGV[1]) then return 0 end
-- A key of that name that is not a namespace index is another program's: refuse, touch nothing.
local _, ns_err = read_index(KEYS[2], 'configurations')
if ns_err then return ns_err end
table.insert(list, ARGV[1])
redis.call('SET', KEYS[1], encode_index('namespaces', list))
if redis.call('EXISTS', KEYS[2]) == 0 then
  redis.call('SET', KEYS[2], '{"configurations":[]}')
end
event(ARGV[1], nil, 'create_namespace')
return 1
