-- set_total.lua: the producer has queued its last chunk; record how many.
--
-- Closes the race with commit.lua: whichever of the two runs second sees
-- chunks_done == chunks_total and answers 1, so exactly one caller enqueues
-- finalize_import (a redelivered chunk may ask again; finalize is idempotent).
-- The report is then pending work: if that message is lost, the sweeper sends it again.
--
-- KEYS[1] import hash
-- KEYS[2] pending work (zset)
-- KEYS[3] imports whose producer is queueing (zset, by heartbeat): the import leaves it
-- KEYS[4] imports whose chunks are all queued (zset): the import enters it (the sweeper checks
--         that none of its chunks was lost)
-- ARGV[1] number of chunks queued
-- ARGV[2] now, ms
-- ARGV[3] the report's member of KEYS[2]
-- ARGV[4] the import id
-- Returns 1 when every chunk is already committed, else 0; -1 when Redis does not know the import
-- (it lost its data): nothing written.

if redis.call('HEXISTS', KEYS[1], 'spec') == 0 then return -1 end
redis.call('HSET', KEYS[1], 'chunks_total', ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[4])
redis.call('ZADD', KEYS[4], ARGV[2], ARGV[4])
local done = tonumber(redis.call('HGET', KEYS[1], 'chunks_done') or '0')
if done == tonumber(ARGV[1]) then
  redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3])
  return 1
end
return 0
