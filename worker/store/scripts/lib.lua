-- lib.lua: helpers prepended to every backfill script when it is loaded (worker/store/lua.py).

-- The last of `count` new people sequence numbers (cio_ids), never below Redis's clock in microseconds
-- since 2023-11-14 (now_ms * 1000 - 1.7e15, the floor): a sequence that went back with Redis (a host
-- crash rolling its AOF back, a Redis restarted without its data) cannot give out a number it gave
-- before, since its clock went on. (Python's worker.store.ids holds the same rule and formats the ids.)
local function next_people(seq_key, count, now_ms)
  local floor = tonumber(now_ms) * 1000 - 1700000000000000
  local last = redis.call('INCRBY', seq_key, count)
  if last - count < floor then
    last = floor + count
    redis.call('SET', seq_key, last)
  end
  return last
end

-- A cio_id: "a" and 12 hex digits of its sequence number (older ids, "a" and 7 digits, never equal one).
local function cio_of(n)
  return string.format('a%012x', n)
end

-- RPUSH ARGV[first .. first+count-1] onto key, then EXPIRE it (when anything was pushed), and
-- record where this chunk's run starts in runs (field = run_name, value = "start:count"), so the
-- problem files are read chunk by chunk in file order, one chunk's rows in memory at a time.
-- The list keeps at most cap rows (0: no cap; BACKFILL_MAX_PROBLEM_ROWS): the rows past it are only
-- counted in the import hash imp's field not_kept (its errors and warnings counters stay exact).
-- In slices: unpack() of thousands of values overflows Lua's C stack.
local function push_all(key, first, count, ttl, runs, run_name, cap, imp, not_kept)
  if count == 0 then return end
  local kept = count
  if cap > 0 then
    kept = math.max(math.min(count, cap - redis.call('LLEN', key)), 0)
    if kept < count then redis.call('HINCRBY', imp, not_kept, count - kept) end
    if kept == 0 then return end
  end
  redis.call('HSET', runs, run_name, redis.call('LLEN', key) .. ':' .. kept)
  redis.call('EXPIRE', runs, ttl)
  local at = first
  while at < first + kept do
    local last = math.min(at + 499, first + kept - 1)
    redis.call('RPUSH', key, unpack(ARGV, at, last))
    at = last + 1
  end
  redis.call('EXPIRE', key, ttl)
end

-- The dedupe shard of a 10-byte key and its field: shard = prefix .. the key's first `bits` bits
-- (16: its first two bytes; up to 24: and the top of the third), field = its last 8 bytes. More
-- bits, more and smaller shards: a shard stays a compact listpack only up to
-- hash-max-listpack-entries (512) fields (see the README's sizing rule).
local function dedupe_slot(prefix, dk, bits)
  local shard = prefix .. string.sub(dk, 1, 2)
  if bits > 16 then
    shard = shard .. string.char(math.floor(string.byte(dk, 3) / 2 ^ (24 - bits)))
  end
  return shard, string.sub(dk, 3)
end

-- The expiry hour a dedupe mark holds: its value is that hour in decimal, followed for an event id by 16
-- bytes (the tag of the import that used it first, then what that import remembers of it: commit.lua).
local function mark_hour(value)
  if #value > 16 then return tonumber(string.sub(value, 1, -17)) end
  return tonumber(value)
end

-- Mark a dedupe key seen until hour exp_h: true when it was not seen (an expired mark, not pruned
-- yet, counts as not seen). commit.lua's events loop does the same inline, for speed.
local function mark_new(prefix, dk, bits, now_h, exp_h)
  local shard, field = dedupe_slot(prefix, dk, bits)
  if redis.call('HSETNX', shard, field, exp_h) == 1 then return true end
  local found = redis.call('HGET', shard, field)
  if mark_hour(found) >= now_h then return false end
  redis.call('HSET', shard, field, #found > 16 and exp_h .. string.sub(found, -16) or exp_h)
  return true
end

-- One event's trigger outcome (commit.lua describes them): counted in counts (an event
-- "outside_window" or "future" once, whatever its campaigns), its decisions kept in decisions for
-- the outbox, its messages scheduled (triggers zset) or sent (deliveries stream) unless dry.
-- The decisions are a JSON array of [kind, due_ms, message object] actions, one a line (",\n" between
-- them: worker/events/chunk.py's trigger_outcome): each action's kind and due time are read at its
-- line's start and its message cut out whole, so no JSON is decoded here. Outcomes come from the worker
-- that sends this script, of the same version: no other form reaches it.
local function take_outcome(outcome, counts, decisions, triggers, deliveries, dry)
  if string.byte(outcome, 1) ~= 91 then  -- ('[') a counter name
    counts[outcome] = (counts[outcome] or 0) + 1
    return
  end
  decisions[#decisions + 1] = outcome
  local at, n = 2, 1
  while true do
    local stop = string.find(outcome, '\n', at, true)
    -- this action is outcome[at .. last]: '["kind",due,{...}]'
    local last = stop and stop - 2 or #outcome - 1
    local what, due, from = string.match(outcome, '^%["([%a_]+)",(%-?%d+),()', at)
    if n == 1 or (what ~= 'outside_window' and what ~= 'future') then
      counts[what] = (counts[what] or 0) + 1
    end
    if not dry then
      if what == 'scheduled' then
        redis.call('ZADD', triggers, due, string.sub(outcome, from, last - 1))
      elseif what == 'sent_now' then
        redis.call('XADD', deliveries, '*', 'message', string.sub(outcome, from, last - 1))
      end
    end
    if not stop then return end
    at, n = stop + 1, n + 1
  end
end

-- How a chunk is committed, from the commit scripts' chunk-state argument: "0" processed, "1" failed
-- (its rows are all errors), "l" failed with its rows gone before any worker read them (expired, or
-- lost by a Redis rolled back: counted in chunks_lost too), "c<n>" cancelled (its n rows were
-- skipped), "p" the first of a Segment chunk's two steps (its rows are counted; the chunk is done
-- only when its second step commits: worker/store/steps.py, CommitStep). Returns failed, cancelled rows, lost.
local function chunk_state(arg)
  if string.sub(arg, 1, 1) == 'c' then return false, tonumber(string.sub(arg, 2)), false end
  return arg == '1' or arg == 'l', 0, arg == 'l'
end

-- A committed chunk's counters, and whether it completes its import: the import's counters, the
-- counters across imports (metrics: real runs only), chunks_failed for a chunk committed as errors,
-- rows_cancelled for a chunk skipped because its import was cancelled, and, for the last chunk, the
-- report's entry in the pending-work set. Returns 1 or 0.
local function count_chunk(imp, metrics, pending, import_id, now_ms, dry, state,
                           imported, duplicates, errors, warnings)
  local failed, cancelled, lost = chunk_state(state)
  if cancelled > 0 then redis.call('HINCRBY', imp, 'rows_cancelled', cancelled) end
  if lost then redis.call('HINCRBY', imp, 'chunks_lost', 1) end
  redis.call('HINCRBY', imp, 'rows', imported + duplicates + errors)
  redis.call('HINCRBY', imp, 'imported', imported)
  redis.call('HINCRBY', imp, 'duplicates', duplicates)
  redis.call('HINCRBY', imp, 'errors', errors)
  redis.call('HINCRBY', imp, 'warnings', warnings)
  if failed then redis.call('HINCRBY', imp, 'chunks_failed', 1) end
  if not dry then
    redis.call('HINCRBY', metrics, 'rows_imported', imported)
    redis.call('HINCRBY', metrics, 'rows_duplicate', duplicates)
    redis.call('HINCRBY', metrics, 'rows_error', errors)
  end
  redis.call('HSETNX', imp, 'first_commit_ms', now_ms)
  redis.call('HSET', imp, 'last_commit_ms', now_ms, 'status', 'running')
  if state == 'p' then return 0 end
  local done = redis.call('HINCRBY', imp, 'chunks_done', 1)
  local total = redis.call('HGET', imp, 'chunks_total')
  if total and tonumber(total) == done then
    redis.call('ZADD', pending, now_ms, import_id .. '/report')
    return 1
  end
  return 0
end

-- Append an entry to the outbox (field/value pairs), and count it in the import's outbox_entries
-- (imp may be false: an entry of no one import). The sinks count it in outbox_stored when they
-- acknowledge it (ack.lua): the two equal means everything the import wrote is in the database.
local function outbox_add(outbox, imp, ...)
  redis.call('XADD', outbox, '*', ...)
  if imp then redis.call('HINCRBY', imp, 'outbox_entries', 1) end
end

-- The version (its "_v") of the person at key, "" for nobody. A person is one string, their state as a JSON
-- object; one stored before that (a hash of fields) is read as it is, until a commit writes them anew.
-- ("_v" is matched in the JSON text: every other key of a state is a field name that cannot be "_v",
-- and a quote inside a value is escaped.)
local function person_version(key)
  local stored = redis.pcall('GET', key)
  if type(stored) == 'table' then return redis.call('HGET', key, '_v') or '' end
  if not stored then return '' end
  return string.match(stored, '"_v":"(%d+)"') or ''
end
