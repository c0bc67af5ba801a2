-- put_chunk.lua: store one chunk's rows for its task, unless the import has stopped.
--
-- The rows are never stored without their pending entry (the sweeper sends again what goes
-- quiet), and never after stop.lua fixed the import's total. The producer's heartbeat is the
-- import's score in KEYS[4]: the sweeper interrupts imports whose producer went silent.
--
-- KEYS[1] the chunk's rows (string)
-- KEYS[2] import hash: chunks_queued, last_row_queued, stop
-- KEYS[3] pending work (zset)
-- KEYS[4] imports whose producer is queueing (zset, score = heartbeat ms)
-- ARGV[1] the rows (orjson)
-- ARGV[2] their TTL, seconds
-- ARGV[3] now, ms
-- ARGV[4] the chunk's member of KEYS[3]
-- ARGV[5] the import id
-- ARGV[6] the chunk's last row number
-- Returns 1 stored, 0 the import has stopped (cancelled or interrupted): nothing stored, -1 Redis
-- does not know the import (it lost its data): nothing stored, no stray hash made.

if redis.call('HEXISTS', KEYS[2], 'spec') == 0 then return -1 end
local stop = redis.call('HGET', KEYS[2], 'stop')
if stop then return 0 end
-- The first write is one a full Redis refuses (SET): the script then changes nothing.
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
redis.call('HINCRBY', KEYS[2], 'chunks_queued', 1)
redis.call('HSET', KEYS[2], 'last_row_queued', ARGV[6])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[4])
redis.call('ZADD', KEYS[4], ARGV[3], ARGV[5])
return 1
