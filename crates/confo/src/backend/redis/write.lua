-- KEYS: root, namespace key, schema key (confo-schema:<ns>). ARGV: namespace; history: ''
-- (off) or 'keep max_age_ms now_ms'; the history record's start (JSON of who and when, without
-- its closing brace); the time as text (for external records); the schema document the batch
-- was checked against ('' unchecked here, 'N' none, else 'V' and its SHA-1: a batch checked
-- against another than the stored one fails with SCHEMA_CONFLICT); then per change seven
-- values:
--   op ('P' put, 'D' delete), configuration, precondition ('A' any, 'N' absent, 'V' version),
--   expected sha1 of the stored value (for 'V'), value (for 'P'), revision restored ('' if none),
--   sha1 of the value (for 'P').
-- Checks every precondition before writing anything; then writes the values, each change's
-- history record (stream confo-history:{<ns>-<cfg>}), the namespace index and one event per
-- change. Returns the number of changes applied.
local ns = ARGV[1]
local HIST = ARGV[2]
local META = ARGV[3]
local TIME_TEXT = ARGV[4]
local SCHEMA = ARGV[5]
local FIRST = 6
local STRIDE = 7
local _, err = require_namespace(KEYS[1], ns)
if err then return err end
local index_err = foreign(KEYS[2])
if index_err then return index_err end
if SCHEMA ~= '' then
  local t = redis.call('TYPE', KEYS[3]).ok
  local stored = 'N'
  if t == 'string' then stored = 'V' .. redis.sha1hex(redis.call('GET', KEYS[3])) elseif t ~= 'none' then stored = t end
  if stored ~= SCHEMA then return fail('SCHEMA_CONFLICT', KEYS[3]) end
end
local n = (#ARGV - FIRST + 1) / STRIDE
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
  local b = FIRST + i * STRIDE
  if ARGV[b] == 'D' or must_decode or not lists_token(raw, cjson.encode(ARGV[b + 1])) then must_decode = true end
end
if must_decode then
  local list, decode_err = read_index(KEYS[2], 'configurations')
  if decode_err then return decode_err end
  configs = list or {}
  for _, cfg in ipairs(configs) do listed[cfg] = true end
else
  for i = 0, n - 1 do listed[ARGV[FIRST + i * STRIDE + 1]] = true end
end
for i = 0, n - 1 do
  local b = FIRST + i * STRIDE
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
local H = history_settings(HIST, META, TIME_TEXT)

local removed = {}
local index_changed = false
for i = 0, n - 1 do
  local b = FIRST + i * STRIDE
  local cfg = ARGV[b + 1]
  if ARGV[b] == 'P' then
    if H then
      local current = nil
      if not foreign(ns .. '-' .. cfg) then current = redis.call('GET', ns .. '-' .. cfg) end
      local op = 'change'
      if ARGV[b + 5] ~= '' then op = 'rollback' elseif not current then op = 'create' end
      record(H, history_key(ns, cfg), current, op, ARGV[b + 4], ARGV[b + 6], ARGV[b + 5])
    end
    redis.call('SET', ns .. '-' .. cfg, ARGV[b + 4])
    if not listed[cfg] then
      configs[#configs + 1] = cfg
      listed[cfg] = true
      index_changed = true
    end
    event(ns, cfg, 'put')
  else
    -- Removing an entry whose key holds another program's data unlists it and leaves the data.
    if not foreign(ns .. '-' .. cfg) then
      if H then
        local current = redis.call('GET', ns .. '-' .. cfg)
        if current then record(H, history_key(ns, cfg), current, 'delete', nil, nil, '') end
      end
      redis.call('DEL', ns .. '-' .. cfg)
    end
    removed[cfg] = true
    listed[cfg] = nil
    event(ns, cfg, 'delete')
  end
end
if next(removed) then
  local kept = without(configs, removed)
  index_changed = index_changed or #kept ~= #configs
  configs = kept
end
-- A namespace key that was missing is written even if empty (as before).
if index_changed or not raw then
  redis.call('SET', KEYS[2], encode_index('configurations', configs))
end
return n
