-- dead.lua: set aside outbox entries the results database refused (dead letters), in one step:
-- each is copied to the dead-letter stream with the database's message and acknowledged in the
-- sinks' group together, so an entry is never lost between the two, nor set aside twice (XACK
-- answers 1 only the first time: an entry another sink already settled is left alone).
--
-- KEYS[1] outbox stream
-- KEYS[2] dead-letter stream
-- KEYS[3] counters across imports (metrics): sink_dead_letters
-- ARGV[1] the sinks' consumer group
-- ARGV[2] import hash prefix (an entry's import hash = prefix .. import id)
-- ARGV[3] now, ms
-- then    per entry: entry id, import id or "", the message, n, then its n fields and values
-- An import's hash counts outbox_dead (its entries set aside: the import is not all stored while
-- there are any); a hash that expired is not brought back.
-- Returns how many entries were set aside now.
local moved = 0
local k = 4
while k <= #ARGV do
  local id, import_id, message, n = ARGV[k], ARGV[k + 1], ARGV[k + 2], tonumber(ARGV[k + 3])
  if redis.call('XACK', KEYS[1], ARGV[1], id) == 1 then
    local fields = {}
    for f = k + 4, k + 3 + 2 * n do fields[#fields + 1] = ARGV[f] end
    fields[#fields + 1] = 'dead_entry'; fields[#fields + 1] = id
    fields[#fields + 1] = 'dead_error'; fields[#fields + 1] = message
    fields[#fields + 1] = 'dead_at'; fields[#fields + 1] = ARGV[3]
    redis.call('XADD', KEYS[2], '*', unpack(fields))
    moved = moved + 1
    local imp = ARGV[2] .. import_id
    if import_id ~= '' and redis.call('EXISTS', imp) == 1 then redis.call('HINCRBY', imp, 'outbox_dead', 1) end
  end
  k = k + 4 + 2 * n
end
if moved > 0 then redis.call('HINCRBY', KEYS[3], 'sink_dead_letters', moved) end
return moved
