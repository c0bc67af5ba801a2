-- lease.lua: keep or give up the lease on applying a people import's chunks.
--
-- Called by the lease holder after each chunk. If the import's next chunk is
-- already stored, the holder keeps the lease (renewed) and applies it; if not,
-- the lease is released in the same atomic step. A chunk stored after this
-- release is picked up by its own task, which then finds the lease free, so no
-- chunk is left waiting with nobody to apply it.
--
-- KEYS[1]  the lease (value = the holder's token)
-- KEYS[2]  import hash (next_chunk)
-- ARGV[1]  the caller's token
-- ARGV[2]  prefix of the import's chunk keys
-- ARGV[3]  lease duration, ms
-- Returns  {1, next_chunk} keep going; {0, next_chunk} released; {-1, 0} the lease is not ours
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return {-1, 0} end
local next_chunk = redis.call('HGET', KEYS[2], 'next_chunk') or '0'
if redis.call('EXISTS', ARGV[2] .. next_chunk) == 1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  return {1, tonumber(next_chunk)}
end
redis.call('DEL', KEYS[1])
return {0, tonumber(next_chunk)}
