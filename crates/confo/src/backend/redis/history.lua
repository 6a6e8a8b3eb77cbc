-- History records, shared by the write scripts: a stream per configuration,
-- confo-history:{<ns>-<cfg>}, numbered by its ids 0-1, 0-2, ... ('0-*': Redis picks the next
-- sequence number, and the stream's last id is kept when old entries are trimmed).

-- The history settings from ARGV: `hist` is '' (off) or 'keep max_age_ms now_ms'; `meta` the
-- record's start (JSON of who and when, without its closing brace); `time_text` the time as
-- text (for external records). nil when history is off.
local function history_settings(hist, meta, time_text)
  if hist == '' then return nil end
  local a, b, c = string.match(hist, '^(%d+) (%d+) (%d+)$')
  -- (Times stay text in the entries: Lua would write a large number as 1.7e+12.)
  return { keep = tonumber(a), max_age = tonumber(b), now_ms = tonumber(c), now_text = c, meta = meta,
    time_text = time_text }
end

local function json_or_null(s)
  if s then return cjson.encode(s) end
  return 'null'
end

-- Appends a revision to the stream `hkey`: the value `value` (JSON text, nil for a deletion),
-- written over `current` (nil if absent) by operation `op`, with version `after`; `restores`
-- is the revision a rollback restores ('' if none).
local function record(h, hkey, current, op, value, after, restores)
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
    redis.call('XADD', hkey, '0-*', 'r', '{"time":' .. cjson.encode(h.time_text) ..
      ',"actor":"(outside confo)","host":"","tool":"external","message":null,"op":"external","before":' ..
      json_or_null(recorded) .. ',"after":' .. json_or_null(before) .. ',"restores":null,"value":' .. found .. '}',
      'after', before or '', 't', h.now_text)
  end
  local entry = h.meta .. ',"op":"' .. op .. '","before":' .. json_or_null(before) .. ',"after":' ..
    json_or_null(after) .. ',"restores":' .. (restores ~= '' and restores or 'null') .. ',"value":' ..
    (value or 'null') .. '}'
  if h.max_age == 0 then
    -- Retention by count, exact, in the same call.
    redis.call('XADD', hkey, 'MAXLEN', h.keep, '0-*', 'r', entry, 'after', after or '', 't', h.now_text)
  else
    redis.call('XADD', hkey, '0-*', 'r', entry, 'after', after or '', 't', h.now_text)
  end
  -- Retention with an age limit: beyond the newest `keep` and older than the limit.
  if h.max_age > 0 then
    local len = redis.call('XLEN', hkey)
    if len > h.keep then
      local old = redis.call('XRANGE', hkey, '-', '+', 'COUNT', len - h.keep)
      for _, old_entry in ipairs(old) do
        local fields = old_entry[2]
        for f = 1, #fields, 2 do
          if fields[f] == 't' and tonumber(fields[f + 1]) < h.now_ms - h.max_age then
            redis.call('XDEL', hkey, old_entry[1])
          end
        end
      end
    end
  end
end

local function history_key(ns, cfg)
  return 'confo-history:{' .. ns .. '-' .. cfg .. '}'
end
