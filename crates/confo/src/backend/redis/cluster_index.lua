-- Cluster mode: a namespace's index, on its own slot only.
-- KEYS: the namespace key. ARGV: namespace, the number A of names to list, A names, then names
-- to unlist. Lists and unlists them (an index that was missing is written even if empty) and
-- publishes one event per name on confo:events ('put' for a listed one, 'delete' for an
-- unlisted one): after this call a reader sees the change. Returns 1 if the index changed.
local ns = ARGV[1]
local list, err = read_index(KEYS[1], 'configurations')
if err then return err end
local missing = list == nil
list = list or {}
local listed = {}
for _, cfg in ipairs(list) do listed[cfg] = true end
local a = tonumber(ARGV[2])
local changed = false
for i = 3, 2 + a do
  local cfg = ARGV[i]
  if not listed[cfg] then
    list[#list + 1] = cfg
    listed[cfg] = true
    changed = true
  end
end
local drop = {}
for i = 3 + a, #ARGV do
  if listed[ARGV[i]] then
    drop[ARGV[i]] = true
    changed = true
  end
end
if next(drop) then list = without(list, drop) end
if changed or missing then redis.call('SET', KEYS[1], encode_index('configurations', list)) end
for i = 3, 2 + a do event(ns, ARGV[i], 'put') end
for i = 3 + a, #ARGV do event(ns, ARGV[i], 'delete') end
if changed then return 1 end
return 0
