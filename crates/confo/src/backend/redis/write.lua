-- KEYS: root, namespace key. ARGV: namespace; history: '' (off) or 'keep max_age_ms now_ms';
-- the history record's start (JSON of who and when, without its closing brace); the time as
-- text (for external records); then per change seven values:
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
local FIRST = 5
local STRIDE = 7
local _, err = require_namespace(KEYS[1], ns)
if err then return err end
local index_err = foreign(KEYS[2])
if index_err then return index_err end
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
-- History: a stream per configuration, numbered by its ids 0-1, 0-2, ... ('0-*': Redis picks the
-- next sequence number, and the stream's last id is kept when old entries are trimmed).
local keep, max_age, now_ms, now_text
if HIST ~= '' then
  local a, b2, c = string.match(HIST, '^(%d+) (%d+) (%d+)$')
  -- (Times stay text in the entries: Lua would write a large number as 1.7e+12.)
  keep, max_age, now_ms, now_text = tonumber(a), tonumber(b2), tonumber(c), c
end
local function json_or_null(s)
  if s then return cjson.encode(s) end
  return 'null'
end
local function record(cfg, current, op, value, after, restores)
  local hkey = 'confo-history:{' .. ns .. '-' .. cfg .. '}'
  -- The last entry, if any; an error reply means the key holds another program's data: no
  -- history is recorded there (and nothing of it is touched).
  local last = redis.pcall('XREVRANGE', hkey, '+', '-', 'COUNT', 1)
  if last.err then return end
  local before = nil
  if current then before = redis.sha1hex(current) end
  -- A change made without confo (a raw client, Python confo) is recorded before this one.
  local recorded = nil
  if #last > 0 then
    local fields = last[1][2]
    for f = 1, #fields, 2 do
      if fields[f] == 'after' and fields[f + 1] ~= '' then recorded = fields[f + 1] end
    end
  end
  if (#last > 0 and recorded ~= before) or (#last == 0 and current) then
    local found = 'null'
    if current and pcall(cjson.decode, current) then found = current end
    redis.call('XADD', hkey, '0-*', 'r', '{"time":' .. cjson.encode(TIME_TEXT) ..
      ',"actor":"(outside confo)","host":"","tool":"external","message":null,"op":"external","before":' ..
      json_or_null(recorded) .. ',"after":' .. json_or_null(before) .. ',"restores":null,"value":' .. found .. '}',
      'after', before or '', 't', now_text)
  end
  local entry = META .. ',"op":"' .. op .. '","before":' .. json_or_null(before) .. ',"after":' ..
    json_or_null(after) .. ',"restores":' .. (restores ~= '' and restores or 'null') .. ',"value":' ..
    (value or 'null') .. '}'
  if max_age == 0 then
    -- Retention by count, exact, in the same call.
    redis.call('XADD', hkey, 'MAXLEN', keep, '0-*', 'r', entry, 'after', after or '', 't', now_text)
  else
    redis.call('XADD', hkey, '0-*', 'r', entry, 'after', after or '', 't', now_text)
  end
  -- Retention with an age limit: beyond the newest `keep` and older than the limit.
  if max_age > 0 then
    local len = redis.call('XLEN', hkey)
    if len > keep then
      local old = redis.call('XRANGE', hkey, '-', '+', 'COUNT', len - keep)
      for _, entry in ipairs(old) do
        local fields = entry[2]
        for f = 1, #fields, 2 do
          if fields[f] == 't' and tonumber(fields[f + 1]) < now_ms - max_age then redis.call('XDEL', hkey, entry[1]) end
        end
      end
    end
  end
end

local removed = {}
local index_changed = false
for i = 0, n - 1 do
  local b = FIRST + i * STRIDE
  local cfg = ARGV[b + 1]
  if ARGV[b] == 'P' then
    if keep then
      local current = nil
      if not foreign(ns .. '-' .. cfg) then current = redis.call('GET', ns .. '-' .. cfg) end
      local op = 'change'
      if ARGV[b + 5] ~= '' then op = 'rollback' elseif not current then op = 'create' end
      record(cfg, current, op, ARGV[b + 4], ARGV[b + 6], ARGV[b + 5])
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
      if keep then
        local current = redis.call('GET', ns .. '-' .. cfg)
        if current then record(cfg, current, 'delete', nil, nil, '') end
      end
      redis.call('DEL', ns .. '-' .. cfg)
    end
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
