-- prune.lua: remove the expired dedupe marks of one shard.
--
-- Marks hold their expiry hour; commit.lua treats an expired mark as absent, so
-- pruning only gives the memory back. Shards are small hashes (a 2-byte prefix
-- of the key names the shard), so one HGETALL per shard stays cheap.
--
-- KEYS[1]  a dedupe shard: field = mark, value = expiry hour (and more: lib.lua's mark_hour)
-- ARGV[1]  now, hours since the epoch
-- Returns  how many marks were removed
local now_h, removed = tonumber(ARGV[1]), 0
local flat = redis.call('HGETALL', KEYS[1])
for k = 1, #flat, 2 do
  if mark_hour(flat[k + 1]) < now_h then
    redis.call('HDEL', KEYS[1], flat[k])
    removed = removed + 1
  end
end
return removed
