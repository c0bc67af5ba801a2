-- room.lua: what a producer checks before it queues a chunk, in one round trip.
--
-- The outbox limit must hold: a chunk queued and not yet committed adds its outbox entry later, so
-- the chunks of every import waiting uncommitted (their members in the pending set; the report and
-- notification members are not chunks) count beside the entries no sink has stored.
--
-- KEYS[1] import hash: chunks_queued, chunks_done, stop
-- KEYS[2] the outbox (stream)
-- KEYS[3] pending work (zset): member "<import>/<chunk number>" for a chunk stored and not committed
-- Returns {chunks_queued, chunks_done, stop, outbox length, chunks pending in every import}.

local state = redis.call('HMGET', KEYS[1], 'chunks_queued', 'chunks_done', 'stop')
local chunks = 0
for _, member in ipairs(redis.call('ZRANGE', KEYS[3], 0, -1)) do
  if string.find(member, '/%d+$') then
    chunks = chunks + 1
  end
end
return {state[1] or '0', state[2] or '0', state[3] or '', redis.call('XLEN', KEYS[2]), chunks}
