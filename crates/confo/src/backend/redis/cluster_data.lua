-- Cluster mode: one configuration's change, on its own slot only.
-- KEYS: the data key <ns>-<cfg>, its history stream (same slot through the hash tag).
-- ARGV: configuration; history ('' or 'keep max_age_ms now_ms'); the record's start; the time
-- as text; op ('P' put, 'D' delete); precondition ('A' any, 'N' absent, 'V' version); expected
-- sha1 (for 'V'); value (for 'P'); revision restored ('' if none); sha1 of the value (for 'P').
-- Checks the precondition against the key (a key that exists is not absent, indexed or not),
-- then records the revision and writes or deletes the value. Publishes nothing: the index
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
if pre == 'N' and current then return fail('CONFLICT', cfg) end
if pre == 'V' and (not current or redis.sha1hex(current) ~= expected) then return fail('CONFLICT', cfg) end
if op == 'P' then
  if H then
    local kind = 'change'
    if ARGV[9] ~= '' then kind = 'rollback' elseif not current then kind = 'create' end
    record(H, KEYS[2], current, kind, ARGV[8], ARGV[10], ARGV[9])
  end
  redis.call('SET', key, ARGV[8])
elseif current then
  if H then record(H, KEYS[2], current, 'delete', nil, nil, '') end
  redis.call('DEL', key)
end
return 1
