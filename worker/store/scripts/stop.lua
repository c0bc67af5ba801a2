-- stop.lua: an import stops being queued before its end: cancelled, or its producer interrupted.
--
-- The chunks stored so far are all the import will have: chunks_total becomes chunks_queued
-- (unless the producer already recorded it), so the import ends once they are committed.
-- The first reason recorded wins. A cancelled import's chunks not yet processed are then
-- skipped by their tasks (commit.lua, state "c<n>"); an interrupted import's are processed.
-- put_chunk.lua stores no chunk of a stopped import, so no chunk can come after the total.
--
-- KEYS[1] import hash: stop, chunks_total, chunks_queued, chunks_done
-- KEYS[2] pending work (zset): the report's member enters it when nothing is left to commit
-- KEYS[3] imports whose producer is queueing (zset): the import leaves it
-- KEYS[4] imports whose chunks are all queued (zset): the import enters it when stopped now
-- ARGV[1] "cancelled" or "interrupted"
-- ARGV[2] now, ms
-- ARGV[3] the report's member of KEYS[2]
-- ARGV[4] the import id
-- Returns {status, done}: status 1 stopped now, 0 the import had already stopped or ended (or
-- an interrupted producer had recorded its total), -1 no such import; done 1 when every chunk
-- is already committed (the caller then queues the report).

if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('ZREM', KEYS[3], ARGV[4])
  return {-1, 0}
end
if redis.call('HEXISTS', KEYS[1], 'report') == 1
   or (ARGV[1] == 'interrupted' and redis.call('HEXISTS', KEYS[1], 'chunks_total') == 1) then
  redis.call('ZREM', KEYS[3], ARGV[4])
  return {0, 0}
end
local first = redis.call('HSETNX', KEYS[1], 'stop', ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[4])
if redis.call('HEXISTS', KEYS[1], 'chunks_total') == 0 then
  redis.call('HSET', KEYS[1], 'chunks_total', redis.call('HGET', KEYS[1], 'chunks_queued') or '0')
end
redis.call('ZADD', KEYS[4], ARGV[2], ARGV[4])
local total = tonumber(redis.call('HGET', KEYS[1], 'chunks_total'))
local done = tonumber(redis.call('HGET', KEYS[1], 'chunks_done') or '0')
if done == total then
  redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3])
  return {first, 1}
end
return {first, 0}
