-- KEYS: root, namespace key. ARGV: namespace, then per change five values:
--   op ('P' put, 'D' delete), configuration, precondition ('A' any, 'N' absent, 'V' version),
--   expected sha1 of the stored value (for 'V'), value (for 'P').
-- Checks every precondition before writing anything; then writes the values, the namespace
-- index and one event per change. Returns the number of changes applied.
local ns = ARGV[1]
local _, err = require_namespace(KEYS[1], ns)
if err then return err end
local index_err = foreign(KEYS[2])
if index_err then return index_err end
local n = (#ARGV - 1) / 5
local SEARCH_AT_MOST = 16
-- Which of the batch's configurations the index lists. Decoding a large index costs more than
-- a point write, so a small batch searches the index for each name instead, and decodes it
-- only when it must change (a new name, a delete) or may spell a name otherwise (\u escapes).
-- A large batch decodes it once: a search per change would cost changes x index bytes.
local raw = redis.call('GET', KEYS[2])
local listed = {}
local configs = nil
local must_decode = not raw or n > SEARCH_AT_MOST or string.find(raw, '\\u', 1, true) ~= nil
for i = 0, n - 1 do
  local b = 2 + i * 5
  if ARGV[b] == 'D' or must_decode or not lists_token(raw, cjson.encode(ARGV[b + 1])) then must_decode = true end
end
if must_decode then
  local list, decode_err = read_index(KEYS[2], 'configurations')
  if decode_err then return decode_err end
  configs = list or {}
  for _, cfg in ipairs(configs) do listed[cfg] = true end
else
  for i = 0, n - 1 do listed[ARGV[2 + i * 5 + 1]] = true end
end
for i = 0, n - 1 do
  local b = 2 + i * 5
  local pre = ARGV[b + 2]
  local key = ns .. '-' .. ARGV[b + 1]
  local foreign_err = foreign(key)
  if foreign_err and ARGV[b] == 'P' then return foreign_err end
  -- (Removing an entry whose key holds another program's data only unlists it: no check.)
  if pre ~= 'A' and not foreign_err then
    local current = redis.call('GET', key)
    -- A value under the key but not in the index was not written by confo: not a conflict.
    if current and not listed[ARGV[b + 1]] and ARGV[b] == 'P' then return fail('FOREIGN', 'unlisted ' .. key) end
    if pre == 'N' and current then return fail('CONFLICT', ARGV[b + 1]) end
    if pre == 'V' and (not current or redis.sha1hex(current) ~= ARGV[b + 3]) then
      return fail('CONFLICT', ARGV[b + 1])
    end
  end
end
local removed = {}
local index_changed = false
for i = 0, n - 1 do
  local b = 2 + i * 5
  local cfg = ARGV[b + 1]
  if ARGV[b] == 'P' then
    redis.call('SET', ns .. '-' .. cfg, ARGV[b + 4])
    if not listed[cfg] then
      configs[#configs + 1] = cfg
      listed[cfg] = true
      index_changed = true
    end
    event(ns, cfg, 'put')
  else
    -- Removing an entry whose key holds another program's data unlists it and leaves the data.
    if not foreign(ns .. '-' .. cfg) then redis.call('DEL', ns .. '-' .. cfg) end
    removed[cfg] = true
    listed[cfg] = nil
    event(ns, cfg, 'delete')
  end
end
if next(removed) then
  local kept = {}
  for _, cfg in ipairs(configs) do
    if not removed[cfg] then kept[#kept + 1] = cfg end
  end
  index_changed = index_changed or #kept ~= #configs
  configs = kept
end
-- A namespace key that was missing is written even if empty (as before).
if index_changed or not raw then
  redis.call('SET', KEYS[2], encode_index('configurations', configs))
end
return n
