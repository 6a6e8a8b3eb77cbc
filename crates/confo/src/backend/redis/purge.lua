-- Rewrites records of one history stream (KEYS[1]) through a stream of its own slot (KEYS[2]):
-- a stream's entries cannot be changed, so every entry is copied with its id, the rewritten
-- ones with their new record (field r), and the copy renamed over the original, in one atomic
-- step. ARGV[1] is the newest id the caller read: a stream that moved on since is left alone
-- (-2); a key of another type is not ours (-1). Returns how many records were replaced.
local key, tmp = KEYS[1], KEYS[2]
if redis.call('TYPE', key).ok ~= 'stream' then return -1 end
local entries = redis.call('XRANGE', key, '-', '+')
if #entries == 0 or entries[#entries][1] ~= ARGV[1] then return -2 end
local new = {}
for i = 2, #ARGV, 2 do new[ARGV[i]] = ARGV[i + 1] end
redis.call('DEL', tmp)
local replaced = 0
for _, entry in ipairs(entries) do
  local id, fields = entry[1], entry[2]
  local record = new[id]
  if record then
    local out = {}
    for j = 1, #fields, 2 do
      out[#out + 1] = fields[j]
      out[#out + 1] = (fields[j] == 'r') and record or fields[j + 1]
    end
    fields = out
    replaced = replaced + 1
  end
  redis.call('XADD', tmp, id, unpack(fields))
end
redis.call('RENAME', tmp, key)
return replaced
