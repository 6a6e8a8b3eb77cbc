-- Cluster mode, repair: deletes an unindexed data key if it still holds the value it held when
-- it was found unindexed. KEYS: the data key. ARGV: the value's sha1, or '*' for a key the
-- operator named (deleted whatever it holds). Returns 1 if deleted.
if ARGV[1] == '*' then return redis.call('DEL', KEYS[1]) end
if redis.call('TYPE', KEYS[1]).ok ~= 'string' then return 0 end
if redis.sha1hex(redis.call('GET', KEYS[1])) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
return 1
