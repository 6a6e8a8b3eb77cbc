-- KEYS: root, namespace key, and (to read the schema document too) the schema key
-- (confo-schema:<ns>). ARGV: namespace, configuration, the configuration's name as a JSON
-- string, and (with the schema key) the SHA-1 of the document the caller holds ('' if none).
-- Reads one configuration without decoding the namespace's index: the index is searched for
-- the name's JSON token (preceded by '[', ',' or white space: inside a JSON string a quote is
-- always escaped), and decoded only if that fails and the index holds \u escapes (Python's
-- json.dumps escapes non-ASCII). Returns false if the configuration is not listed, else its
-- value, '\0missing' if its key is gone, or '\0foreign <type>'. With the schema key: an
-- array of that answer ('' for false), 1 if it is listed (else 0), and the schema document:
-- '' if there is none, '=' if it is the one the caller holds, '\0foreign <type>', or the
-- document.
local function read()
  local _, err = require_namespace(KEYS[1], ARGV[1])
  if err then return err end
  local index_err = foreign(KEYS[2])
  if index_err then return index_err end
  local raw = redis.call('GET', KEYS[2])
  if not raw then return false end
  local listed = lists_token(raw, ARGV[3])
  if not listed and string.find(raw, '\\u', 1, true) then
    local configs, decode_err = read_index(KEYS[2], 'configurations')
    if decode_err then return decode_err end
    listed = contains(configs or {}, ARGV[2])
  end
  if not listed then return false end
  local key = ARGV[1] .. '-' .. ARGV[2]
  local t = redis.call('TYPE', key).ok
  if t == 'none' then return '\0missing' end
  if t ~= 'string' then return '\0foreign ' .. t end
  return redis.call('GET', key)
end
local value = read()
if not KEYS[3] or type(value) == 'table' then return value end
local schema = ''
local t = redis.call('TYPE', KEYS[3]).ok
if t == 'string' then
  schema = redis.call('GET', KEYS[3])
  if redis.sha1hex(schema) == ARGV[4] then schema = '=' end
elseif t ~= 'none' then
  schema = '\0foreign ' .. t
end
if value then return {value, 1, schema} end
return {'', 0, schema}
