-- KEYS: root, namespace key. ARGV: namespace, the number D of dangling names, D names (index
-- entries whose key was missing), then pairs (name, sha1) of unindexed keys <ns>-<name> to
-- delete: confo's values the index does not list, each with the SHA-1 of the value found, or
-- '*' for a key the operator named. Each is checked again here: a dangling entry is dropped
-- from the index only if its key is still missing; an unindexed key is deleted only if the
-- index still does not list it and it still holds the value found (a named key: whatever it
-- holds). Returns the number of fixes made.
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
for i = 3 + d, #ARGV, 2 do
  local cfg, sha = ARGV[i], ARGV[i + 1]
  local key = ns .. '-' .. cfg
  local same = false
  if sha == '*' then
    same = redis.call('EXISTS', key) == 1
  elseif redis.call('TYPE', key).ok == 'string' then
    same = redis.sha1hex(redis.call('GET', key)) == sha
  end
  if not listed[cfg] and same then
    redis.call('DEL', key)
    fixes = fixes + 1
  end
end
return fixes
