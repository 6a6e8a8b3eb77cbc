-- KEYS: root, namespace key. ARGV: namespace, the number D of dangling names, D names (index
-- entries whose key was missing), then unindexed names (keys <ns>-<name> the index does not
-- list). Each is checked again here: a dangling entry is dropped from the index only if its key
-- is still missing; an unindexed key is deleted only if it is still a string the index does not
-- list. Returns the number of fixes made.
local ns = ARGV[1]
local _, err = require_namespace(KEYS[1], ns)
if err then return err end
local list, index_err = read_index(KEYS[2], 'configurations')
if index_err then return index_err end
list = list or {}
local listed = {}
for _, cfg in ipairs(list) do listed[cfg] = true end
local d = tonumber(ARGV[2])
local fixes = 0
local drop = {}
for i = 3, 2 + d do
  local cfg = ARGV[i]
  if listed[cfg] and redis.call('EXISTS', ns .. '-' .. cfg) == 0 then
    drop[cfg] = true
    fixes = fixes + 1
    event(ns, cfg, 'delete')
  end
end
if next(drop) then
  redis.call('SET', KEYS[2], encode_index('configurations', without(list, drop)))
end
for i = 3 + d, #ARGV do
  local cfg = ARGV[i]
  local key = ns .. '-' .. cfg
  if not listed[cfg] and redis.call('TYPE', key).ok == 'string' then
    redis.call('DEL', key)
    fixes = fixes + 1
  end
end
return fixes
