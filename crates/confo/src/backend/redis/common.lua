-- Shared by every confo script (concatenated in front of each). Index documents are
-- {"namespaces":[...]} in the root key and {"configurations":[...]} in a namespace key;
-- they are decoded with cjson (any spacing, any order) and written back compact.

local function fail(kind, detail)
  return redis.error_reply(kind .. ' ' .. detail)
end

-- The list stored under key's field, nil if the key is missing, or nil, true if corrupt.
local function read_index(key, field)
  local raw = redis.call('GET', key)
  if not raw then return nil, false end
  local ok, doc = pcall(cjson.decode, raw)
  if not ok or type(doc) ~= 'table' or type(doc[field]) ~= 'table' then return nil, true end
  for _, name in ipairs(doc[field]) do
    if type(name) ~= 'string' then return nil, true end
  end
  return doc[field], false
end

-- Encoded by hand: cjson would write an empty list as {}.
local function encode_index(field, list)
  local parts = {}
  for i, name in ipairs(list) do parts[i] = cjson.encode(name) end
  return '{"' .. field .. '":[' .. table.concat(parts, ',') .. ']}'
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
  local list, corrupt = read_index(root_key, 'namespaces')
  if corrupt then return nil, fail('CORRUPT', root_key) end
  if not list or not contains(list, ns) then return nil, fail('NOTFOUND', ns) end
  return list, nil
end
