-- KEYS: root, namespace key. ARGV: namespace. Returns a flat array name1, value1, name2, ...
-- (a missing value is nil) read in one consistent step. A listed namespace whose key is
-- missing reads as empty.
local _, err = require_namespace(KEYS[1], ARGV[1])
if err then return err end
local configs, index_err = read_index(KEYS[2], 'configurations')
if index_err then return index_err end
local reply = {}
if not configs or #configs == 0 then return reply end
local keys = {}
for i, cfg in ipairs(configs) do keys[i] = ARGV[1] .. '-' .. cfg end
-- MGET in slices: unpack() has a stack limit. (PER_KEY: in a cluster, GET key by key.)
for first = 1, #keys, 1000 do
  local last = math.min(first + 999, #keys)
  local values
  if PER_KEY then
    values = {}
    for i = first, last do values[i - first + 1] = redis.pcall('GET', keys[i]) end
    for i = first, last do
      if type(values[i - first + 1]) == 'table' then values[i - first + 1] = false end
    end
  else
    values = redis.call('MGET', unpack(keys, first, last))
  end
  for i = first, last do
    reply[#reply + 1] = configs[i]
    local value = values[i - first + 1]
    if not value then
      -- MGET answers nil for a missing key and for one of another type: say which.
      local t = redis.call('TYPE', keys[i]).ok
      if t ~= 'none' then value = '\0foreign ' .. t end
    end
    reply[#reply + 1] = value
  end
end
return reply
