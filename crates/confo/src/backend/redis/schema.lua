-- KEYS: schema key (confo-schema:<ns>), and the root (left out in cluster mode, where the
-- caller checks the namespace first: they are in different slots). ARGV: namespace,
-- precondition ('A' any, 'N' absent, 'V' version), expected sha1 of the stored document (for
-- 'V'), the document ('' to remove it). Writes a namespace's schema document if the
-- precondition holds (a put needs the namespace to exist). Returns the sha1 of the document
-- written, or '' after a removal.
local ns = ARGV[1]
local removing = ARGV[4] == ''
if not removing and KEYS[2] then
  local _, err = require_namespace(KEYS[2], ns)
  if err then return err end
end
local err = foreign(KEYS[1])
if err then return err end
local current = redis.call('GET', KEYS[1])
local pre = ARGV[2]
if (pre == 'N' and current) or (pre == 'V' and (not current or redis.sha1hex(current) ~= ARGV[3])) then
  return fail('SCHEMA_CONFLICT', KEYS[1])
end
if removing then
  redis.call('DEL', KEYS[1])
  return ''
end
redis.call('SET', KEYS[1], ARGV[4])
return redis.sha1hex(ARGV[4])
