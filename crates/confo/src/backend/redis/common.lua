-- Shared by every confo script (concatenated in front of each). Index documents are
-- {"namespaces":[...]} in the root key and {"configurations":[...]} in a namespace key;
-- they are decoded with cjson (any spacing, any order) and written back compact.

local function fail(kind, detail)
  return redis.error_reply(kind .. ' ' .. detail)
end

-- An error reply if key holds another type than the string confo's layout keeps there (a hash,
-- a list, ...: another program's data, which confo neither reads nor overwrites), else nil.
local function foreign(key)
  local t = redis.call('TYPE', key).ok
  if t ~= 'none' and t ~= 'string' then return fail('FOREIGN', t .. ' ' .. key) end
  return nil
end

-- The list stored under key's field (nil if the key is missing), and an error reply if the key
-- is foreign or not an index document.
local function read_index(key, field)
  local err = foreign(key)
  if err then return nil, err end
  local raw = redis.call('GET', key)
  if not raw then return nil, nil end
  local ok, doc = pcall(cjson.decode, raw)
  if not ok or type(doc) ~= 'table' or type(doc[field]) ~= 'table' then return nil, fail('CORRUPT', key) end
  for _, name in ipairs(doc[field]) do
    if type(name) ~= 'string' then return nil, fail('CORRUPT', key) end
  end
  return doc[field], nil
end

-- Encoded by hand: cjson would write an empty list as {}.
local function encode_index(field, list)
  local parts = {}
  for i, name in ipairs(list) do parts[i] = cjson.encode(name) end
  return '{"' .. field .. '":[' .. table.concat(parts, ',') .. ']}'
end

-- True if the raw index document lists the JSON string `token` (a name as cjson.encode
-- writes it): a plain search for the token where a list element can start ('[', ',' or white
-- space before it; inside a JSON string a quote is always escaped). False can also mean the
-- index spells the name otherwise (Python escapes non-ASCII as \u): callers decode then.
local function lists_token(raw, token)
  local from = 1
  while true do
    local at = string.find(raw, token, from, true)
    if not at then return false end
    local before = at > 1 and string.sub(raw, at - 1, at - 1) or ''
    if before == '[' or before == ',' or before == ' ' or before == '\n' or before == '\t' or before == '\r' then
      return true
    end
    from = at + 1
  end
end

-- The names of list that the set `drop` does not hold, in order.
local function without(list, drop)
  local kept = {}
  for _, name in ipairs(list) do
    if not drop[name] then kept[#kept + 1] = name end
  end
  return kept
end

local function contains(list, name)
  for _, v in ipairs(list) do
    if v == name then return true end
  end
  return false
end

local function event(namespace, configuration, operation)
  local msg = '{"namespace":' .. cjson.encode(namespace)
  if configuration then msg = msg .. ',"configuration":' .. cjson.encode(configuration) end
  redis.call('PUBLISH', 'confo:events', msg .. ',"operation":"' .. operation .. '"}')
end

-- The namespace list, or an error reply if the root is corrupt or ns is not listed.
local function require_namespace(root_key, ns)
  local list, err = read_index(root_key, 'namespaces')
  if err then return nil, err end
  if not list or not contains(list, ns) then return nil, fail('NOTFOUND', ns) end
  return list, nil
end
