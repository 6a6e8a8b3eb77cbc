-- KEYS: root, namespace key. ARGV: namespace. Deletes every configuration key, the namespace
-- key and the root's entry.
local list, err = require_namespace(KEYS[1], ARGV[1])
if err then return err end
local configs, index_err = read_index(KEYS[2], 'configurations')
if index_err then return index_err end
for _, cfg in ipairs(configs or {}) do
  redis.call('DEL', ARGV[1] .. '-' .. cfg)
end
redis.call('DEL', KEYS[2])
redis.call('SET', KEYS[1], encode_index('namespaces', without(list, { [ARGV[1]] = true })))
event(ARGV[1], nil, 'delete_namespace')
return 1
