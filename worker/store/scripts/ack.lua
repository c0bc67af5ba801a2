-- ack.lua: the sink stored these outbox entries: acknowledge them, and count each once.
--
-- XACK answers 1 only the first time an entry is acknowledged, so the counters below grow
-- once per entry even when a batch is written again (a sink that died before acknowledging).
-- Dead letters stored by `backfill sink --retry-dead` come through here too, with no group:
-- they are deleted from the dead-letter stream (XDEL, 1 only the first time) and are no longer
-- counted dead in their import.
--
-- KEYS[1] outbox stream (no group: the dead-letter stream)
-- KEYS[2] counters across imports (metrics): stored_events, stored_people, stored_deliveries,
--         stored_late_duplicates
-- ARGV[1] the sinks' consumer group, or "" for dead letters
-- ARGV[2] import hash prefix (an entry's import hash = prefix .. import id); backfill runs on
--         one Redis instance, not a cluster
-- then    per entry, six values: entry id, import id or "", events, people, deliveries it held,
--         and its late duplicates: events the database did not store because another event held
--         their dedupe key (Redis had forgotten its mark: worker/sink/claims.py)
-- An import's hash counts outbox_stored (entries stored: equal to its outbox_entries when all it
-- wrote is in the database), events_stored and late_duplicates; a hash that expired is not
-- brought back.
-- Returns how many entries were acknowledged now.
local acked = 0
local totals = {0, 0, 0, 0}
local dead = ARGV[1] == ''
for k = 3, #ARGV, 6 do
  local now
  if dead then now = redis.call('XDEL', KEYS[1], ARGV[k]) else now = redis.call('XACK', KEYS[1], ARGV[1], ARGV[k]) end
  if now == 1 then
    acked = acked + 1
    for t = 1, 4 do totals[t] = totals[t] + tonumber(ARGV[k + 1 + t]) end
    local imp = ARGV[2] .. ARGV[k + 1]
    if ARGV[k + 1] ~= '' and redis.call('EXISTS', imp) == 1 then
      redis.call('HINCRBY', imp, 'outbox_stored', 1)
      redis.call('HINCRBY', imp, 'events_stored', ARGV[k + 2] - ARGV[k + 5])
      if ARGV[k + 5] ~= '0' then redis.call('HINCRBY', imp, 'late_duplicates', ARGV[k + 5]) end
      if dead then redis.call('HINCRBY', imp, 'outbox_dead', -1) end
    end
  end
end
totals[1] = totals[1] - totals[4]  -- (the events stored)
if totals[1] > 0 then redis.call('HINCRBY', KEYS[2], 'stored_events', totals[1]) end
if totals[2] > 0 then redis.call('HINCRBY', KEYS[2], 'stored_people', totals[2]) end
if totals[3] > 0 then redis.call('HINCRBY', KEYS[2], 'stored_deliveries', totals[3]) end
if totals[4] > 0 then redis.call('HINCRBY', KEYS[2], 'stored_late_duplicates', totals[4]) end
return acked
