-- finalize.lua: write an import's report, once.
--
-- KEYS[1]   import hash
-- KEYS[2]   finalized marker (SET NX: only the first run writes)
-- KEYS[3]   pending work (zset): the report's member is removed, whichever run comes
-- KEYS[4]   counters across imports (metrics): imports_<status> counts finished imports
-- KEYS[5]   outbox stream: the import's record (options, status, report) for the database
-- KEYS[6..] keys that expire with the import's retention
-- ARGV[1]   final status
-- ARGV[2]   report JSON
-- ARGV[3]   finished at, ms
-- ARGV[4]   retention, seconds
-- ARGV[5]   the report's member of KEYS[3]
-- ARGV[6]   the notification's member of KEYS[3]: due from now on, removed once it is done
-- ARGV[7]   the import id
-- ARGV[8]   the import's record (JSON) for the outbox, or "" (dry runs store nothing)
-- ARGV[9]   the import's "adopted" counter as the report counted it: an undo of another import that
--           left events to this one changed its counters since when it differs, and -1 asks for the
--           report again (nothing written)
-- Returns 1 for the run that wrote the report, 0 for any later one, -1 to build the report again,
-- -2 when Redis does not know the import (it lost its data): no report is made up for it.

if redis.call('EXISTS', KEYS[1]) == 0 then return -2 end
if (redis.call('HGET', KEYS[1], 'adopted') or '0') ~= ARGV[9] then return -1 end
-- The first write is one a full Redis refuses (SET): the script then changes nothing, and the
-- task is retried.
if not redis.call('SET', KEYS[2], ARGV[3], 'NX') then
  redis.call('ZREM', KEYS[3], ARGV[5])
  return 0
end
redis.call('ZREM', KEYS[3], ARGV[5])
redis.call('HSET', KEYS[1], 'status', ARGV[1], 'report', ARGV[2], 'finished_ms', ARGV[3])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[6])
redis.call('HINCRBY', KEYS[1], 'finalize_runs', 1)
redis.call('HINCRBY', KEYS[4], 'imports_' .. ARGV[1], 1)
redis.call('EXPIRE', KEYS[2], ARGV[4])
if ARGV[8] ~= '' then outbox_add(KEYS[5], KEYS[1], 'import', ARGV[7], 'record', ARGV[8]) end
for k = 6, #KEYS do redis.call('EXPIRE', KEYS[k], ARGV[4]) end
redis.call('EXPIRE', KEYS[1], ARGV[4])
return 1
