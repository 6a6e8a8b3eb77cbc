-- Cluster mode: one configuration's change, on its own slot only.
-- KEYS: the data key <ns>-<cfg>, its history stream (same slot through the hash tag).
-- ARGV: configuration; history ('' or 'keep max_age_ms now_ms'); the record's start; the time
-- as text; op ('P' put, 'D' delete); precondition ('A' any, 'N' absent, 'V' version); expected
-- sha1 (for 'V'); value (for 'P'); revision restored ('' if none); sha1 of the value (for 'P');
-- '1' if the index listed the configuration when the batch began, else '0'; the age in ms
-- after which an unlisted value counts as left over.
-- Checks the precondition against the key, then records the revision and writes or deletes
-- the value. A key that exists is not absent, listed or not, except a left-over: a value no
-- index listed, last written by confo (its history's newest entry) longer ago than the given
-- age, i.e. by a writer that died between its value and its listing; a create-only write may
-- replace it (so a crashed import can simply be run again). Publishes nothing: the index
-- script that follows does, once readers can see the change. Returns 1, or 0 for a delete of
-- a key holding another program's data (left alone; unlisting it is the index's part).
local cfg, H = ARGV[1], history_settings(ARGV[2], ARGV[3], ARGV[4])
local op, pre, expected = ARGV[5], ARGV[6], ARGV[7]
local key = KEYS[1]
local foreign_err = foreign(key)
if foreign_err then
  if op == 'P' then return foreign_err end
  return 0
end
local current = redis.call('GET', key)
local present = current
if current and pre == 'N' and ARGV[11] == '0' and H then
  local last = redis.pcall('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)
  if not last.err and #last > 0 then
    local fields, written = last[1][2], nil
    for f = 1, #fields, 2 do
      if fields[f] == 't' then written = tonumber(fields[f + 1]) end
    end
    if written and written < H.now_ms - tonumber(ARGV[12]) then present = nil end
  end
end
if pre == 'N' and present then return fail('CONFLICT', cfg) end
if pre == 'V' and (not current or redis.sha1hex(current) ~= expected) then return fail('CONFLICT', cfg) end
if op == 'P' then
  if H then
    local kind = 'change'
    if ARGV[9] ~= '' then kind = 'rollback' elseif not present then kind = 'create' end
    record(H, KEYS[2], current, kind, ARGV[8], ARGV[10], ARGV[9])
  end
  redis.call('SET', key, ARGV[8])
elseif current then
  if H then record(H, KEYS[2], current, 'delete', nil, nil, '') end
  redis.call('DEL', key)
end
return 1
