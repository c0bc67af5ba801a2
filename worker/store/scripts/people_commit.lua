-- people_commit.lua: one chunk of a people import, committed whole, in file order, or not at all.
--
-- Chunks of a people import commit one after the other: this chunk must be the
-- import's next_chunk. Its changes were decided against a snapshot of the
-- directory; they are written only if nothing they overwrite changed since
-- (each person's version _v, each index entry's value). Otherwise nothing is
-- written and the caller reads a new snapshot and decides again.
--
-- Person hashes and the dry run's shadow keys are derived from prefixes:
-- backfill runs on one Redis instance, not a cluster.
--
-- KEYS[1]  import hash: counters, next_chunk, chunks_done/chunks_total
-- KEYS[2]  import done-set: chunk numbers already committed
-- KEYS[3]  the chunk's rows (deleted)
-- KEYS[4]  import errors list (orjson rows)
-- KEYS[5]  import warnings list (orjson rows)
-- KEYS[6]  the import's memory of identifiers on earlier rows (hash)
-- KEYS[7]  people index by id (a dry run's shadow index for a dry run)
-- KEYS[8]  people index by e-mail (likewise)
-- KEYS[9]  pending work (zset): the chunk's member leaves it, the report's enters it when this
--          commit completes the import
-- KEYS[10] counters across imports (metrics): rows by outcome, for real runs
-- KEYS[11] import problem runs (hash): where each chunk's error and warning rows start
-- KEYS[12] outbox stream: real runs append the chunk's people, each one's whole new state with
--          its version (the database keeps a person's highest version), with the identifiers the
--          chunk gave them ("ids"), and the anonymous events the chunk moved to people (with "cio":
--          their people's cio_ids)
-- KEYS[13] anonymous ids tied to people (hash): anonymous id -> user id
-- KEYS[14] scheduled triggers zset, KEYS[15] deliveries stream (the moved events' triggers)
--
-- ARGV[1]  chunk number
-- ARGV[2]  "1" for a dry run: write the people to shadow keys, check nothing against the real ones
-- ARGV[3]  now, ms
-- ARGV[4]  person hash prefix (the dry run's shadow prefix for a dry run)
-- ARGV[5]  TTL of problem rows, seconds
-- ARGV[6]  rows imported   ARGV[7] people created   ARGV[8] rows skipped (only_new: person exists)
-- ARGV[9]  TTL of the import's scratch keys (memory, dry-run shadows), seconds, renewed at each write:
--          they serve only while the import runs (finalize deletes the memory)
-- ARGV[10] the import id (pending members are "<import id>/<chunk>" and "<import id>/report")
-- ARGV[11] the chunk's state: "0" applied; "1" could not be applied, its rows are all errors
--          (chunks_failed; "l": its rows were gone, counted in chunks_lost too); "c<n>": its import was cancelled, its n rows are skipped (rows_cancelled)
-- ARGV[12] the most error (and warning) rows the import keeps (0: all); past it they are counted in
--          errors_not_kept / warnings_not_kept (lib.lua's push_all)
-- then     n, n error rows
--          n, n warning rows
--          n, n pairs (memory field, value)
--          n, n quadruples ("id"|"email", key, value read or "", new value or "" to remove)
--          n, n triples (cio_id, version read or "" for a new person, full new state as a JSON object)
--          the prefix of the held anonymous events' lists (worker/segment/anonymous.py), then
--          n, n quadruples (anonymous id, how many held events were read, the last of them or "", user
--            id): the ids this chunk ties to people, checked like the directory (still untied or tied
--            to that user, the same number of events held ending with the same one: a list that
--            expired and was held anew differs), then tied, their lists deleted
--          n, n pairs (event JSON as the person's, trigger outcome as commit.lua takes them): the
--            held events moved, appended to the outbox and counted in anonymous_merged
--          the identifiers this chunk gives people, a JSON array of [kind, identifier, cio_id] ("id",
--            "email", "anonymous"), or "" for none: the outbox's "ids" (the database keeps every
--            identifier a person has had, so an old one still finds them)
--          the cio_id of each person the moved events name, a JSON object (user id -> cio_id)
-- Returns  {1, finalize 0/1} committed; {0, 0} already committed; {-1, 0} the directory changed
--          since the snapshot; {-2, next_chunk} not this chunk's turn; {-3, 0} Redis does not know the
--          import (it lost its data since the chunk began): nothing written.

local imp, done_set, chunk_key = KEYS[1], KEYS[2], KEYS[3]
local chunk, dry, now_ms, prefix, ttl = ARGV[1], ARGV[2] == '1', ARGV[3], ARGV[4], ARGV[5]
local scratch_ttl = ARGV[9]
if redis.call('SISMEMBER', done_set, chunk) == 1 then
  redis.call('ZREM', KEYS[9], ARGV[10] .. '/' .. chunk)
  return {0, 0}
end
if redis.call('EXISTS', imp) == 0 then return {-3, 0} end
local next_chunk = redis.call('HGET', imp, 'next_chunk') or '0'
if next_chunk ~= chunk then return {-2, tonumber(next_chunk)} end

-- Find each section's start before checking or writing anything.
local at = 13
local function section(width)
  local n = tonumber(ARGV[at]); local first = at + 1
  at = first + n * width
  return first, n
end
local err_at, n_err = section(1)
local warn_at, n_warn = section(1)
local seen_at, n_seen = section(2)
local idx_at, n_idx = section(4)
local per_at, n_per = section(3)
local held_prefix = ARGV[at]; at = at + 1
local tie_at, n_tie = section(4)
local moved_at, n_moved = section(2)
local given_ids, moved_cio = ARGV[at], ARGV[at + 1]
local index_key = {id = KEYS[7], email = KEYS[8]}

-- The index entries of a chunk, by index: {kind = {ARGV positions of their quadruples}}. Checked
-- with one HMGET and written with one HSET and one HDEL an index, 500 entries at a time, instead
-- of a call an entry (a chunk's entries are distinct: the caller keeps one per index and key).
local by_index = {id = {}, email = {}}
for k = 0, n_idx - 1 do
  local j = idx_at + k * 4
  local list = by_index[ARGV[j]]
  list[#list + 1] = j
end

if not dry then
  for kind, list in pairs(by_index) do
    for from = 1, #list, 500 do
      local fields = {}
      for n = from, math.min(from + 499, #list) do fields[#fields + 1] = ARGV[list[n] + 1] end
      local read = redis.call('HMGET', index_key[kind], unpack(fields))  -- (a missing field is false)
      for n = from, math.min(from + 499, #list) do
        if (read[n - from + 1] or '') ~= ARGV[list[n] + 2] then return {-1, 0} end
      end
    end
  end
  for k = 0, n_per - 1 do
    local j = per_at + k * 3
    if (redis.call('HGET', prefix .. ARGV[j], '_v') or '') ~= ARGV[j + 1] then return {-1, 0} end
  end
  for k = 0, n_tie - 1 do
    local j = tie_at + k * 4
    local owner = redis.call('HGET', KEYS[13], ARGV[j])
    local list, count = held_prefix .. ARGV[j], tonumber(ARGV[j + 1])
    if (owner and owner ~= ARGV[j + 3]) or redis.call('LLEN', list) ~= count
       or (count > 0 and redis.call('LINDEX', list, -1) ~= ARGV[j + 2]) then
      return {-1, 0}
    end
  end
end

redis.call('SADD', done_set, chunk)
redis.call('ZREM', KEYS[9], ARGV[10] .. '/' .. chunk)
push_all(KEYS[4], err_at, n_err, ttl, KEYS[11], 'e' .. chunk, tonumber(ARGV[12]), imp, 'errors_not_kept')
push_all(KEYS[5], warn_at, n_warn, ttl, KEYS[11], 'w' .. chunk, tonumber(ARGV[12]), imp, 'warnings_not_kept')
for from = seen_at, seen_at + n_seen * 2 - 1, 800 do  -- 400 pairs a call: unpack() overflows Lua's C stack
  redis.call('HSET', KEYS[6], unpack(ARGV, from, math.min(from + 799, seen_at + n_seen * 2 - 1)))
end
if n_seen > 0 then redis.call('EXPIRE', KEYS[6], scratch_ttl) end

for kind, list in pairs(by_index) do
  for from = 1, #list, 500 do
    local sets, dels = {}, {}
    for n = from, math.min(from + 499, #list) do
      local j = list[n]
      if ARGV[j + 3] == '' and not dry then
        dels[#dels + 1] = ARGV[j + 1]
      else
        -- a dry run records a removal as "" so that it hides the real entry
        sets[#sets + 1] = ARGV[j + 1]; sets[#sets + 1] = ARGV[j + 3]
      end
    end
    if #dels > 0 then redis.call('HDEL', index_key[kind], unpack(dels)) end
    if #sets > 0 then redis.call('HSET', index_key[kind], unpack(sets)) end
  end
end
for k = 0, n_per - 1 do
  local j = per_at + k * 3
  local key = prefix .. ARGV[j]
  local flat = {}
  for name, value in pairs(cjson.decode(ARGV[j + 2])) do
    flat[#flat + 1] = name; flat[#flat + 1] = value
  end
  redis.call('DEL', key)
  for s = 1, #flat, 400 do
    redis.call('HSET', key, unpack(flat, s, math.min(s + 399, #flat)))
  end
  if dry then redis.call('EXPIRE', key, scratch_ttl) end
end
if (n_per > 0 or given_ids ~= '') and not dry then
  local fields = {'import', ARGV[10], 'chunk', chunk}
  if n_per > 0 then
    local states = {}
    for k = 0, n_per - 1 do states[k + 1] = ARGV[per_at + k * 3 + 2] end
    fields[#fields + 1] = 'people'; fields[#fields + 1] = '[' .. table.concat(states, ',') .. ']'
  end
  if given_ids ~= '' then fields[#fields + 1] = 'ids'; fields[#fields + 1] = given_ids end
  outbox_add(KEYS[12], imp, unpack(fields))
end
if not dry and n_tie > 0 then
  for k = 0, n_tie - 1 do
    local j = tie_at + k * 4
    redis.call('HSET', KEYS[13], ARGV[j], ARGV[j + 3])
    redis.call('DEL', held_prefix .. ARGV[j])
  end
  if n_moved > 0 then
    local bodies, counts, decisions = {}, {}, {}
    for k = 0, n_moved - 1 do
      bodies[k + 1] = ARGV[moved_at + k * 2]
      take_outcome(ARGV[moved_at + k * 2 + 1], counts, decisions, KEYS[14], KEYS[15], false)
    end
    local fields = {'import', ARGV[10], 'chunk', chunk, 'count', n_moved, 'events', table.concat(bodies, '\n'),
                    'cio', moved_cio}
    if #decisions > 0 then
      fields[#fields + 1] = 'decisions'; fields[#fields + 1] = '[' .. table.concat(decisions, ',') .. ']'
    end
    outbox_add(KEYS[12], imp, unpack(fields))
    for name, count in pairs(counts) do redis.call('HINCRBY', imp, 'trig_' .. name, count) end
    redis.call('HINCRBY', imp, 'anonymous_merged', n_moved)
  end
end
if dry and n_idx > 0 then
  redis.call('EXPIRE', KEYS[7], scratch_ttl); redis.call('EXPIRE', KEYS[8], scratch_ttl)
end

local imported, created, skipped = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
redis.call('DEL', chunk_key)
redis.call('HINCRBY', imp, 'people_skipped', skipped)
redis.call('HINCRBY', imp, 'people_created', created)
redis.call('HSET', imp, 'next_chunk', tonumber(chunk) + 1)
-- skipped rows (only_new: the person exists) count as duplicates
return {1, count_chunk(imp, KEYS[10], KEYS[9], ARGV[10], now_ms, dry, ARGV[11],
                       imported, skipped, n_err, n_warn)}
