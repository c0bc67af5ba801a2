-- commit.lua: one chunk's whole outcome in one atomic step.
--
-- A chunk commits exactly once: its number goes into the done-set first, and a
-- chunk already there changes nothing. Everything else the chunk does (events,
-- people created, dedupe marks, triggers, counters, problem rows, deleting the
-- chunk's rows) happens in this same script, so a crash before it leaves no
-- trace and a crash after it leaves the whole outcome.
--
-- Dynamic keys (dedupe shards, person hashes) are derived here from prefixes:
-- backfill runs on one Redis instance, not a cluster.
--
-- KEYS[1]  import hash: counters (HINCRBY) and chunks_total
-- KEYS[2]  import done-set: chunk numbers already committed
-- KEYS[3]  the chunk's rows (deleted)
-- KEYS[4]  import errors list (orjson rows)
-- KEYS[5]  import warnings list (orjson rows)
-- KEYS[6]  outbox stream: one entry per chunk with events (keys.OUTBOX): its events (JSON texts
--          joined by "\n"), their trigger decisions, the people it created, and "cio": the cio_id of
--          each person its events name (a JSON object, person key -> cio_id: one field a chunk, so
--          the sink stores every event with its person's stable key), "keys": the events' dedupe keys
--          (10 bytes each, in the same order; ten zero bytes for none) and "hours": "<now>:<expiry>" in
--          hours since the epoch, so the results database keeps each key once within its dedupe window
--          even when Redis forgets its marks (a host crash rolls it back: worker/sink/claims.py)
-- KEYS[7]  scheduled triggers zset (score = due ms)
-- KEYS[8]  deliveries stream (triggers sent now)
-- KEYS[9]  people index of the file's identifier kind: identifier -> cio_id
-- KEYS[10] people sequence (new cio_ids)
-- KEYS[11] pending work (zset): the chunk's member leaves it; the report's enters it when this
--          commit completes the import (the sweeper sends again whatever stays there too long)
-- KEYS[12] counters across imports (metrics): rows by outcome, for real runs
-- KEYS[13] import problem runs (hash): where each chunk's error and warning rows start
-- KEYS[14] the import's memory of its event ids (hash): id digest -> content digest .. row
-- KEYS[15] anonymous ids tied to people (hash): anonymous id -> user id
-- KEYS[16] set while an undo changes the dedupe memory (keys.UNDO_MARKS): nothing is written and
--          {-3, 0, 0, 0} asks the caller to wait and commit again
-- KEYS[17] the import's duplicates (hash, keys.import_duplicates): field = chunk, value = "<now ms>:<expiry
--          hour>:" then the dedupe keys of the chunk's events counted duplicates (10 bytes each), then
--          their rows (4 bytes each, big-endian), read from their JSON: what an undo of the import that
--          held them leaves to this one (one HSET a chunk with duplicates; none for a chunk without)
-- KEYS[18] the imports that counted duplicates (zset, keys.TRACED): score = now ms
--
-- ARGV[1]  chunk number
-- ARGV[2]  "1" for a dry run: count and report, write no data
-- ARGV[3]  now, ms
-- ARGV[4]  now, hours since the epoch (dedupe marks hold their expiry hour)
-- ARGV[5]  expiry hour for marks written now
-- ARGV[6]  dedupe shard prefix (a mark is shard = prefix..key[1..2], field = key[3..]); shards
--          have no TTL: prune.lua removes expired marks (beat runs it), as EXPIRE on every
--          touched shard cost a quarter of this script
-- ARGV[7]  person hash prefix
-- ARGV[8]  identifier kind: "email" or "id"
-- ARGV[9]  import id (pending members are "<import id>/<chunk>" and "<import id>/report")
-- ARGV[10] problem-list TTL, seconds
-- ARGV[11] dry runs only: prefix of this import's shadow keys, where a dry run records the
--          marks and people it would have written, so its later chunks see them ("" otherwise)
-- ARGV[12] the chunk's state: "0" processed; "1" could not be processed, its rows are all errors
--          (chunk_failed, chunk_poison): counted in chunks_failed, the import ends partially_failed;
--          "l": likewise, its rows gone before any worker read them (counted in chunks_lost too); "c<n>": its import was cancelled and its n rows are skipped (rows_cancelled); "p": the events
--          step of a Segment chunk, whose person step follows (ARGV[1] is then "<chunk>e": its own
--          done-set member and problem runs; the rows stay and the chunk is not counted done:
--          worker/store/steps.py, CommitStep.EVENTS)
-- ARGV[13] TTL of the import's event-id memory, seconds (finalize deletes it)
-- ARGV[14] dedupe shard bits (16 to 24): how many of a key's first bits name its shard (lib.lua)
-- ARGV[15] the people the chunk's lookup found, a JSON object (person key -> cio_id); this script
--          adds the people it creates and those another chunk created since the lookup
-- ARGV[16] the most error (and warning) rows the import keeps (0: all); past it they are counted in
--          errors_not_kept / warnings_not_kept (lib.lua's push_all)
-- then     n, n error rows
--          n, n warning rows
--          n, then the event ids this chunk uses first, packed: their 8-byte digests, and their
--            12-byte values (content digest, then the row as 4 bytes); if another chunk recorded one
--            of them since this chunk read the memory, nothing is written and {-1, 0, 0, 0} asks
--            the caller to read it again and decide again
--          n, n triples (person key, value as written, that value as a JSON string) to create if missing
--          n, then the n events packed (one ARGV per event would cost more to send than to commit):
--            dedupe keys: n x 10 bytes, ten zero bytes for an event that has none
--            event JSONs joined by "\n" (JSON text never holds a raw newline)
--            where each JSON ends in that text: n x 4 bytes, little-endian (read only around the
--              duplicates: the events kept are the text between them, cut once per duplicate, not
--              once per event)
--            the trigger outcome shared by every event, or "" and then n outcomes, one per event
--          A trigger outcome is a counter name ("passive", "outside_window", ...) or a
--          JSON array of [kind, due_ms, message] actions for the event's campaigns; an event
--          "outside_window" or "future" has one such action per campaign it would have
--          triggered (the decisions the database keeps), counted once for the event.
--          n, the prefix of the held-events lists, their TTL (seconds), then n triples (dedupe key
--            or ten zero bytes, anonymous id, event JSON): Segment events held for their anonymous
--            id (worker/segment/anonymous.py), deduped like the others, counted as imported and
--            in anonymous_stored; if one of these ids was tied to a person since the chunk read the
--            ties, nothing is written and {-2, 0, 0, 0} asks the caller to read them again
-- Returns  {committed 1/0/-1/-2/-3, imported, duplicates, finalize 0/1}; {-4, 0, 0, 0} when Redis does
--          not know the import (it lost its data since the chunk began): nothing written

local imp, done_set, chunk_key = KEYS[1], KEYS[2], KEYS[3]
if redis.call('SISMEMBER', done_set, ARGV[1]) == 1 then
  redis.call('ZREM', KEYS[11], ARGV[9] .. '/' .. ARGV[1])
  return {0, 0, 0, 0}
end
if redis.call('EXISTS', imp) == 0 then return {-4, 0, 0, 0} end
if redis.call('EXISTS', KEYS[16]) == 1 then return {-3, 0, 0, 0} end
-- Find each section before writing anything: the id check may refuse the whole commit.
local i = 17
local err_at, n_err = i + 1, tonumber(ARGV[i]); i = err_at + n_err
local warn_at, n_warn = i + 1, tonumber(ARGV[i]); i = warn_at + n_warn
local n_ids = tonumber(ARGV[i])
local id_fields, id_values = ARGV[i + 1], ARGV[i + 2]
i = i + (n_ids > 0 and 3 or 1)
-- Where the held anonymous events begin (after the people to create and the events).
local ev_at = i + 1 + 3 * tonumber(ARGV[i])
local anon_at = ev_at + 5 + (ARGV[ev_at + 4] == '' and tonumber(ARGV[ev_at]) or 0)
local n_anon = tonumber(ARGV[anon_at])
for k = 0, n_anon - 1 do
  if redis.call('HEXISTS', KEYS[15], ARGV[anon_at + 4 + k * 3]) == 1 then return {-2, 0, 0, 0} end
end
-- The event ids first: if another chunk recorded one of them meanwhile, nothing is written and the
-- caller decides again. Read, then written, 500 at a time (one HMGET and one HSET a slice instead of
-- an HSETNX an id; unpack() of thousands of values overflows Lua's C stack). The HSET is a write
-- Redis refuses when memory is full, so a full Redis refuses the whole script here, before it
-- changes anything.
if n_ids > 0 then
  local sub = string.sub
  for from = 1, n_ids, 500 do
    local fields = {}
    for k = from, math.min(from + 499, n_ids) do fields[#fields + 1] = sub(id_fields, k * 8 - 7, k * 8) end
    for _, taken in ipairs(redis.call('HMGET', KEYS[14], unpack(fields))) do  -- (a missing field is false)
      if taken then return {-1, 0, 0, 0} end
    end
  end
  for from = 1, n_ids, 500 do
    local pairs_ = {}
    for k = from, math.min(from + 499, n_ids) do
      pairs_[#pairs_ + 1] = sub(id_fields, k * 8 - 7, k * 8)
      pairs_[#pairs_ + 1] = sub(id_values, k * 12 - 11, k * 12)
    end
    redis.call('HSET', KEYS[14], unpack(pairs_))
  end
end
-- Then a write Redis refuses when memory is full (SADD; ZREM is allowed), for a chunk without ids.
redis.call('SADD', done_set, ARGV[1])
redis.call('ZREM', KEYS[11], ARGV[9] .. '/' .. ARGV[1])
local dry = ARGV[2] == '1'
local now_ms, now_h, exp_h = ARGV[3], tonumber(ARGV[4]), ARGV[5]
local dd_prefix, person_prefix, kind, shard_bits = ARGV[6], ARGV[7], ARGV[8], tonumber(ARGV[14])
local ttl, shadow = ARGV[10], ARGV[11]
local cap = tonumber(ARGV[16])
push_all(KEYS[4], err_at, n_err, ttl, KEYS[13], 'e' .. ARGV[1], cap, imp, 'errors_not_kept')
push_all(KEYS[5], warn_at, n_warn, ttl, KEYS[13], 'w' .. ARGV[1], cap, imp, 'warnings_not_kept')
if n_ids > 0 then redis.call('EXPIRE', KEYS[14], ARGV[13]) end

local created, new_people, known = 0, {}, {}
local n_new = tonumber(ARGV[i]); i = i + 1
local shadow_people = shadow .. 'people'
if dry then
  for _ = 1, n_new do
    local key = ARGV[i]; i = i + 3
    if redis.call('HEXISTS', KEYS[9], key) == 0 and redis.call('HSETNX', shadow_people, key, 1) == 1 then
      created = created + 1
    end
  end
  if created > 0 then redis.call('EXPIRE', shadow_people, ttl) end
else
  -- Who is missing first, then one INCRBY for all their cio_ids. (HGET, not HEXISTS: a person another
  -- chunk created since the lookup is named in the entry's cio map at the same cost.)
  local missing = {}
  for _ = 1, n_new do
    local cio = redis.call('HGET', KEYS[9], ARGV[i])
    if cio then
      known[#known + 1] = cjson.encode(ARGV[i]) .. ':"' .. cio .. '"'
    else
      missing[#missing + 1] = i
    end
    i = i + 3
  end
  created = #missing
  if created > 0 then
    local last = next_people(KEYS[10], created, now_ms)
    local created_at = tostring(math.floor(tonumber(now_ms) / 1000))
    for n, at in ipairs(missing) do
      local key, value = ARGV[at], ARGV[at + 1]
      local cio = cio_of(last - created + n)
      redis.call('HSET', KEYS[9], key, cio)
      redis.call('HSET', person_prefix .. cio, 'cio_id', cio, kind, value, 'created_at', created_at, '_v', 1)
      new_people[n] = '{"cio_id":"' .. cio .. '","' .. kind .. '":' .. ARGV[at + 2] .. ',"created_at":"' ..
                      created_at .. '","_v":"1"}'
      known[#known + 1] = cjson.encode(key) .. ':"' .. cio .. '"'
    end
  end
end

local imported, duplicates = 0, 0
local counts, decisions, shadow_marks, dups = {}, {}, false, {}
local n_ev = tonumber(ARGV[i])
local packed_keys, packed_events, ends, shared_outcome = ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4]
local no_key = string.rep('\0', 10)
local sub = string.sub
local wide = shard_bits > 16
for k = 1, n_ev do
  local dk = sub(packed_keys, k * 10 - 9, k * 10)
  local fresh = true
  -- A key twice in one chunk needs no table of its own: the first occurrence's mark catches the second.
  if dk ~= no_key then
    local shard, field
    if wide then
      shard, field = dedupe_slot(dd_prefix, dk, shard_bits)
    else  -- (dedupe_slot, inlined for the usual 16 bits: this loop runs for every event)
      shard, field = dd_prefix .. sub(dk, 1, 2), sub(dk, 3)
    end
    if dry then
      local expires = redis.call('HGET', shard, field)
      if expires and tonumber(expires) >= now_h then
        fresh = false
      else
        -- one hash per dry run is enough: it lives only as long as the import's records
        if redis.call('HSETNX', shadow .. 'dd', dk, 1) == 0 then fresh = false end
        shadow_marks = true
      end
    elseif redis.call('HSETNX', shard, field, exp_h) == 1 then
      -- a new mark: one call for the usual case
    elseif tonumber(redis.call('HGET', shard, field)) >= now_h then
      fresh = false
    else
      redis.call('HSET', shard, field, exp_h)  -- an expired mark (not pruned yet): the event is new again
    end
  end
  if not fresh then
    duplicates = duplicates + 1
    dups[duplicates] = k
  elseif shared_outcome == '' then
    take_outcome(ARGV[i + 4 + k], counts, decisions, KEYS[7], KEYS[8], dry)
  end
end
imported = n_ev - duplicates
if duplicates > 0 and not dry then
  -- Every event JSON starts {"import":"<id>","row":<n>, (worker/events/chunk.py): the row is read there.
  local dup_keys, dup_rows, match = {}, {}, string.match
  for n, k in ipairs(dups) do
    local start = k == 1 and 1 or struct.unpack('<I4', ends, k * 4 - 7) + 2
    dup_keys[n] = sub(packed_keys, k * 10 - 9, k * 10)
    dup_rows[n] = struct.pack('>I4', tonumber(match(packed_events, '^{"import":"[^"]*","row":(%d+)', start)))
  end
  redis.call('HSET', KEYS[17], ARGV[1], now_ms .. ':' .. exp_h .. ':' .. table.concat(dup_keys) .. table.concat(dup_rows))
  redis.call('EXPIRE', KEYS[17], ttl)
  redis.call('ZADD', KEYS[18], now_ms, ARGV[9])
end
if shared_outcome ~= '' and imported > 0 then counts[shared_outcome] = imported end
if shadow_marks then redis.call('EXPIRE', shadow .. 'dd', ttl) end
if (imported > 0 or created > 0) and not dry then
  local events = packed_events
  if duplicates > 0 then
    -- The events kept: the text between the duplicates. Event k ends at ends[k] (its "\n" follows).
    local kept, from = {}, 1
    for _, k in ipairs(dups) do
      local stop = struct.unpack('<I4', ends, k * 4 - 3)
      local start = k == 1 and 1 or struct.unpack('<I4', ends, k * 4 - 7) + 2
      if start > from then kept[#kept + 1] = sub(packed_events, from, start - 2) end
      from = stop + 2
    end
    if from <= #packed_events then kept[#kept + 1] = sub(packed_events, from) end
    events = table.concat(kept, '\n')
    -- their dedupe keys likewise: the 10-byte runs between the duplicates'
    local kept_keys, at = {}, 1
    for _, k in ipairs(dups) do
      if k * 10 - 9 > at then kept_keys[#kept_keys + 1] = sub(packed_keys, at, k * 10 - 10) end
      at = k * 10 + 1
    end
    kept_keys[#kept_keys + 1] = sub(packed_keys, at)
    packed_keys = table.concat(kept_keys)
  end
  -- The chunk's people: those its lookup found, then those this commit created or found created.
  local cio_map = ARGV[15]
  if #known > 0 then
    cio_map = (cio_map == '{}' and '{' or string.sub(cio_map, 1, -2) .. ',') .. table.concat(known, ',') .. '}'
  end
  local fields = {'import', ARGV[9], 'chunk', ARGV[1], 'count', imported, 'events', events, 'cio', cio_map,
                  'keys', packed_keys, 'hours', now_h .. ':' .. exp_h}
  if #decisions > 0 then
    fields[#fields + 1] = 'decisions'; fields[#fields + 1] = '[' .. table.concat(decisions, ',') .. ']'
  end
  if #new_people > 0 then
    fields[#fields + 1] = 'people'; fields[#fields + 1] = '[' .. table.concat(new_people, ',') .. ']'
  end
  outbox_add(KEYS[6], imp, unpack(fields))
end

-- The events held for their anonymous ids: one list per id, its TTL renewed at each event (Segment
-- imports have no dry run: a dry one would count them held without looking at the marks).
local held = 0
for k = 0, n_anon - 1 do
  local j = anon_at + 3 + k * 3
  if dry or ARGV[j] == no_key or mark_new(dd_prefix, ARGV[j], shard_bits, now_h, exp_h) then
    held = held + 1
    if not dry then
      local list = ARGV[anon_at + 1] .. ARGV[j + 1]
      redis.call('RPUSH', list, ARGV[j + 2])
      redis.call('EXPIRE', list, ARGV[anon_at + 2])
    end
  end
end
if n_anon > 0 then
  imported, duplicates = imported + held, duplicates + n_anon - held
  redis.call('HINCRBY', imp, 'anonymous_stored', held)
end

if ARGV[12] ~= 'p' then redis.call('DEL', chunk_key) end  -- a first step leaves the rows to the second
if created > 0 then redis.call('HINCRBY', imp, 'people_created', created) end
for name, count in pairs(counts) do redis.call('HINCRBY', imp, 'trig_' .. name, count) end
local finalize = count_chunk(imp, KEYS[12], KEYS[11], ARGV[9], now_ms, dry, ARGV[12],
                             imported, duplicates, n_err, n_warn)
return {1, imported, duplicates, finalize}
