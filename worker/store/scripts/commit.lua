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
-- Its KEYS and ARGV are laid out by worker/store/commit_args.py (CommitKeys, CommitArgs), the one place
-- that builds them; KEY_NAMES and ARGV_NAMES below bind them to these names, in that order (a unit test
-- compares the two). Sections of variable length follow the fixed arguments, each where its "*_at" says.
--
-- KEYS
--   import_hash      import hash: counters (HINCRBY) and chunks_total
--   done             import done-set: chunk numbers already committed
--   chunk_rows       the chunk's rows (deleted)
--   errors           import errors list (orjson rows)
--   warnings         import warnings list (orjson rows)
--   outbox           outbox stream: one entry per chunk with events (keys.OUTBOX): its events (JSON texts
--                    joined by "\n"), their trigger decisions, the people it created, and "cio": the cio_id of
--                    each person its events name (a JSON object, person key -> cio_id: one field a chunk, so
--                    the sink stores every event with its person's stable key), "keys": the events' dedupe keys
--                    (10 bytes each, in the same order; ten zero bytes for none) and "hours": "<now>:<expiry>" in
--                    hours since the epoch, so the results database keeps each key once within its dedupe window
--                    even when Redis forgets its marks (a host crash rolls it back: worker/sink/claims.py)
--   triggers         scheduled triggers zset (score = due ms)
--   deliveries       deliveries stream (triggers sent now)
--   people_index     people index of the file's identifier kind: identifier -> cio_id
--   people_seq       people sequence (new cio_ids)
--   pending          pending work (zset): the chunk's member leaves it; the report's enters it when this
--                    commit completes the import (the sweeper sends again whatever stays there too long)
--   metrics          counters across imports (metrics): rows by outcome, for real runs
--   problem_runs     import problem runs (hash): where each chunk's error and warning rows start
--   event_ids        the import's memory of the event ids whose marks are another import's (hash): id digest ->
--                    content digest .. row (an id whose mark this import wrote is remembered in the mark)
--   anonymous_links  anonymous ids tied to people (hash): anonymous id -> user id
--   undo_marks       set while an undo changes the dedupe memory (keys.UNDO_MARKS): nothing is written and
--                    {-3, 0, 0, 0} asks the caller to wait and commit again
--   duplicates       the import's duplicates (hash, keys.import_duplicates): field = chunk, value = "<now ms>:<expiry
--                    hour>:" then the dedupe keys of the chunk's events counted duplicates (10 bytes each), then
--                    their rows (4 bytes each, big-endian), read from their JSON: what an undo of the import that
--                    held them leaves to this one (one HSET a chunk with duplicates; none for a chunk without)
--   traced           the imports that counted duplicates (zset, keys.TRACED): score = now ms
--
-- ARGV, fixed
--   member           the chunk number: its done-set member (a Segment chunk's events step: "<chunk>e")
--   dry_run          "1" for a dry run: count and report, write no data
--   now_ms           now, ms
--   now_h            now, hours since the epoch (dedupe marks hold their expiry hour)
--   expiry_h         expiry hour for marks written now
--   dedupe_prefix    dedupe shard prefix (a mark is shard = prefix..key[1..2], field = key[3..]; lib.lua's
--                    dedupe_slot); shards have no TTL: prune.lua removes expired marks (beat runs it), as
--                    EXPIRE on every touched shard cost a quarter of this script
--   shard_bits       dedupe shard bits (16 to 24): how many of a key's first bits name its shard (lib.lua)
--   person_prefix    person record prefix (a person is one string, their state as a JSON object)
--   identifier       identifier kind: "email" or "id"
--   import_id        import id (pending members are "<import id>/<chunk>" and "<import id>/report")
--   id_tag           the import's tag (4 bytes, worker/events/chunk.py's import_tag): in the marks it writes
--   problem_ttl_s    problem-list TTL, seconds
--   shadow_prefix    dry runs only: prefix of this import's shadow keys, where a dry run records the
--                    marks and people it would have written, so its later chunks see them ("" otherwise)
--   state            the chunk's state: "0" processed; "1" could not be processed, its rows are all errors
--                    (chunk_failed, chunk_poison): counted in chunks_failed, the import ends partially_failed;
--                    "l": likewise, its rows gone before any worker read them (counted in chunks_lost too);
--                    "c<n>": its import was cancelled and its n rows are skipped (rows_cancelled); "p": the
--                    events step of a Segment chunk, whose person step follows (member is then "<chunk>e": its
--                    own done-set member and problem runs; the rows stay and the chunk is not counted done:
--                    worker/store/steps.py, CommitStep.EVENTS)
--   ids_ttl_s        TTL of the import's event-id memory, seconds (finalize deletes it)
--   known            the people the chunk's lookup found, a JSON object (person key -> cio_id); this script
--                    adds the people it creates and those another chunk created since the lookup
--   max_problem_rows the most error (and warning) rows the import keeps (0: all); past it they are counted in
--                    errors_not_kept / warnings_not_kept (lib.lua's push_all)
--   errors_at .. campaigns_at: where each section below starts in ARGV
--
-- ARGV, sections (each starts with its count n)
--   errors           n, n error rows
--   warnings         n, n warning rows
--   ids              n, then n records packed (worker/events/chunk.py's ID_RECORD, 47 bytes each), one for each
--                    event id the chunk uses first: its event (1-based, 3 bytes little-endian) and its mode (a
--                    byte: 1 when told, + 2 when a later event of the chunk uses the id for another event),
--                    the value its mark takes (expiry_h in 7 digits, then the import tag, content digest,
--                    row as 4 bytes big-endian), the id's 8-byte field in event_ids, and the 12 bytes the
--                    chunk was told the import remembers of it (zeros: nothing). If the truth differs where
--                    it would change a warning, nothing is written and {-1, 0, 0, 0, (id field .. what the
--                    import remembers) of each} asks the caller to decide again (what the import remembers:
--                    12 zero bytes for nothing)
--   create           n, n triples (person key, value as written, that value as a JSON string) to create if missing
--   events           n, then the n events packed (one ARGV per event would cost more to send than to commit):
--                      the mark records: each event's dedupe key with dedupe_prefix in front (NO_KEY's too),
--                        so a record's first bytes name its shard (dedupe_slot: with shard_bits above 16 the
--                        third key byte's top bits are added here) and its last 8 bytes are the mark's field
--                      dedupe keys: n x 10 bytes, ten zero bytes for an event that has none (a mark's field is
--                        the key's last 8 bytes)
--                      event JSONs joined by "\n" (JSON text never holds a raw newline)
--                      where each JSON ends in that text: n x 4 bytes, little-endian (read only around the
--                        duplicates: the events kept are the text between them, cut once per duplicate, not
--                        once per event)
--                      the trigger outcome shared by every event; or "", then n bytes, one an event: its
--                        counter outcome's code (its place in OUTCOME_NAMES below) or 0 for an event with
--                        decisions, then the decisions of each event coded 0, in order (one argument each
--                        only for them: worker/store/commit_args.py's _pack_events)
--                    A trigger outcome is a counter name ("passive", "outside_window", ...) or a
--                    JSON array of [kind, due_ms, message object] actions for the event's campaigns, one a
--                    line (lib.lua's take_outcome cuts the messages out); an event
--                    "outside_window" or "future" has one such action per campaign it would have
--                    triggered (the decisions the database keeps), counted once for the event.
--   anonymous        n, the prefix of the held-events lists, their TTL (seconds), then n triples (dedupe key
--                    or ten zero bytes, anonymous id, event JSON): Segment events held for their anonymous
--                    id (worker/segment/anonymous.py), deduped like the others, counted as imported and
--                    in anonymous_stored; if one of these ids was tied to a person since the chunk read the
--                    ties, nothing is written and {-2, 0, 0, 0} asks the caller to read them again
--   campaigns        n, then n pairs ("<kind>:<campaign name as its JSON holds it>", count): the chunk's trigger
--                    decisions counted by campaign and kind (commit_args.by_campaign); a duplicate's are taken
--                    back here and the rest added to the import's "tc:<kind>:<name>" counters (the report's
--                    triggers_by_campaign). An event outside_window or future counts for each of its campaigns.
-- Returns  {committed 1/0/-1/-2/-3, imported, duplicates, finalize 0/1} (-1: and what the import remembers
--          of the ids in question, above); {-4, 0, 0, 0} when Redis does
--          not know the import (it lost its data since the chunk began): nothing written

local KEY_NAMES = {'import_hash', 'done', 'chunk_rows', 'errors', 'warnings', 'outbox', 'triggers', 'deliveries',
                   'people_index', 'people_seq', 'pending', 'metrics', 'problem_runs', 'event_ids',
                   'anonymous_links', 'undo_marks', 'duplicates', 'traced'}
local ARGV_NAMES = {'member', 'dry_run', 'now_ms', 'now_h', 'expiry_h', 'dedupe_prefix', 'shard_bits',
                    'person_prefix', 'identifier', 'import_id', 'id_tag',
                    'problem_ttl_s', 'shadow_prefix', 'state',
                    'ids_ttl_s', 'known', 'max_problem_rows', 'errors_at', 'warnings_at', 'ids_at', 'create_at',
                    'events_at', 'anonymous_at', 'campaigns_at'}
-- A counter outcome by its code in the packed outcomes (worker/events/rules.py's OUTCOMES, in order).
local OUTCOME_NAMES = {'passive', 'future', 'outside_window', 'no_campaign', 'sent_now', 'scheduled', 'discarded'}
local K, A = {}, {}
for n, name in ipairs(KEY_NAMES) do K[name] = KEYS[n] end
for n, name in ipairs(ARGV_NAMES) do A[name] = ARGV[n] end

local call, sub = redis.call, string.sub
local imp, member, import_id = K.import_hash, A.member, A.import_id
if call('SISMEMBER', K.done, member) == 1 then
  call('ZREM', K.pending, import_id .. '/' .. member)
  return {0, 0, 0, 0}
end
if call('EXISTS', imp) == 0 then return {-4, 0, 0, 0} end
if call('EXISTS', K.undo_marks) == 1 then return {-3, 0, 0, 0} end
-- Each section where the builder says it starts, and its count.
local err_at, warn_at, ids_at = tonumber(A.errors_at), tonumber(A.warnings_at), tonumber(A.ids_at)
local create_at, ev_at, anon_at = tonumber(A.create_at), tonumber(A.events_at), tonumber(A.anonymous_at)
local camp_at = tonumber(A.campaigns_at)
local n_err, n_warn, n_ids = tonumber(ARGV[err_at]), tonumber(ARGV[warn_at]), tonumber(ARGV[ids_at])
local n_anon = tonumber(ARGV[anon_at])
-- Nothing is written before these checks: each may refuse the whole commit.
for k = 0, n_anon - 1 do
  if call('HEXISTS', K.anonymous_links, ARGV[anon_at + 4 + k * 3]) == 1 then return {-2, 0, 0, 0} end
end
-- The events' marks first, before anything else is written: one HSETNX an event. A mark holds its expiry
-- hour, and for an event id the chunk uses first also the import's tag and what the import remembers of the
-- id (lib.lua's mark_hour), so the mark answers whether this import used the id before: its first use is in
-- its own mark, or, when the id's mark is another import's, in the import's event-id memory (a hash written
-- only then: a re-import). A chunk told otherwise than the truth about an id (another chunk of the import
-- used it since, say) would warn wrongly: its writes are taken back and {-1, 0, 0, 0, what is true} asks the
-- caller to decide again. The first HSETNX is a write Redis refuses when memory is full, so a full Redis
-- refuses the whole script there, before it changes anything.
local dry = A.dry_run == '1'
local now_ms, now_h, exp_h = A.now_ms, tonumber(A.now_h), A.expiry_h
local dd_prefix, kind, shard_bits = A.dedupe_prefix, A.identifier, tonumber(A.shard_bits)
local ttl, shadow = A.problem_ttl_s, A.shadow_prefix
local imported, duplicates = 0, 0
local counts, decisions, shadow_marks, dups = {}, {}, false, {}
local n_ev, marks = tonumber(ARGV[ev_at]), ARGV[ev_at + 1]
local packed_keys, packed_events, ends, shared_outcome = ARGV[ev_at + 2], ARGV[ev_at + 3], ARGV[ev_at + 4], ARGV[ev_at + 5]
local no_key, no_field, shadow_dd = string.rep('\0', 10), string.rep('\0', 8), shadow .. 'dd'
local plen, wide, scale = #dd_prefix, shard_bits > 16, 2 ^ (24 - shard_bits)
local rec = plen + 10
local records, tag, memory, byte = ARGV[ids_at + 1], A.id_tag, K.event_ids, string.byte
local has_memory = n_ids > 0 and call('EXISTS', memory) == 1
local r, next_k, mode = 0, 0, 0  -- the next record (its offset in records), its event and its mode
if n_ids > 0 then
  local b1, b2, b3
  b1, b2, b3, mode = byte(records, 1, 4)
  next_k = b1 + b2 * 256 + b3 * 65536
  -- (the records carry the marks' whole values, their hour the worker's: it must be this one)
  if tonumber(sub(records, 5, 11)) ~= tonumber(exp_h) then return redis.error_reply('records expire at another hour') end
end
local no_memory, conflicts, restored, remembered = string.rep('\0', 12), {}, {}, {}
-- What decides a row's warning: a memory of the id for another event than the row's (its row is named).
local function warning(memory_of, content)
  if memory_of ~= no_memory and sub(memory_of, 1, 8) ~= content then return memory_of end
  return ''
end
for k = 1, n_ev do
  local at = (k - 1) * rec  -- the record is marks[at + 1 .. at + rec]
  local field = sub(marks, at + plen + 3, at + rec)
  local fresh, first_use = true, k == next_k
  -- A key twice in one chunk needs no table of its own: the first occurrence's mark catches the second.
  if field ~= no_field or sub(marks, at + plen + 1, at + plen + 2) ~= '\0\0' then  -- (NO_KEY: ten zero bytes)
    local shard = sub(marks, at + 1, at + plen + 2)
    if wide then shard = shard .. string.char(math.floor(string.byte(marks, at + plen + 3) / scale)) end
    local value = first_use and sub(records, r + 5, r + 27) or exp_h
    local found, mine = false, false  -- the mark found (false: none), and whether it now holds value
    if dry then
      found = call('HGET', shard, field)
      if found and mark_hour(found) >= now_h then
        fresh = false
      else
        -- one hash per dry run is enough: it lives only as long as the import's records
        if call('HSETNX', shadow_dd, sub(packed_keys, k * 10 - 9, k * 10), 1) == 0 then fresh = false end
        shadow_marks = true
      end
      found = false  -- (a dry run remembers its ids in the import's memory, never in a mark)
    elseif call('HSETNX', shard, field, value) == 1 then
      mine = true  -- a new mark: one call for the usual case
    else
      found = call('HGET', shard, field)
      if mark_hour(found) >= now_h then
        fresh = false
      else
        -- an expired mark (not pruned yet): the event is new again; an import's memory in it stays
        if #found > 16 and not (first_use and sub(found, -16, -13) ~= tag) then value = exp_h .. sub(found, -16) end
        call('HSET', shard, field, value)
        restored[k] = found
        mine = first_use
      end
    end
    if first_use then
      local first_of = false
      if has_memory then first_of = call('HGET', memory, sub(records, r + 28, r + 35)) end
      if not first_of and found and #found > 16 and sub(found, -16, -13) == tag then first_of = sub(found, -12) end
      if not first_of and not mine then
        local id_field = sub(records, r + 28, r + 35)
        call('HSET', memory, id_field, sub(records, r + 16, r + 27))
        remembered[#remembered + 1], has_memory = id_field, true
      end
      if first_of or mode > 0 then
        local told, truth, content = sub(records, r + 36, r + 47), first_of or no_memory, sub(records, r + 16, r + 23)
        if truth ~= told and (mode >= 2 or warning(truth, content) ~= warning(told, content)) then
          conflicts[#conflicts + 1] = sub(records, r + 28, r + 35) .. truth
        end
      end
      r = r + 47
      if r < #records then
        local b1, b2, b3
        b1, b2, b3, mode = byte(records, r + 1, r + 4)
        next_k = b1 + b2 * 256 + b3 * 65536
      end
    end
  end
  if not fresh then
    duplicates = duplicates + 1
    dups[duplicates] = k
  end
end
if #conflicts > 0 then
  -- Nothing of the chunk stays: the memory it wrote, the marks it changed back, the marks it made gone.
  for _, id_field in ipairs(remembered) do call('HDEL', memory, id_field) end
  local dup = {}
  for _, k in ipairs(dups) do dup[k] = true end
  for k = 1, n_ev do
    local at = (k - 1) * rec
    local field = sub(marks, at + plen + 3, at + rec)
    if not dup[k] and (field ~= no_field or sub(marks, at + plen + 1, at + plen + 2) ~= '\0\0') then
      if dry then
        call('HDEL', shadow_dd, sub(packed_keys, k * 10 - 9, k * 10))
      else
        local shard = sub(marks, at + 1, at + plen + 2)
        if wide then shard = shard .. string.char(math.floor(string.byte(marks, at + plen + 3) / scale)) end
        if restored[k] then call('HSET', shard, field, restored[k]) else call('HDEL', shard, field) end
      end
    end
  end
  return {-1, 0, 0, 0, table.concat(conflicts)}
end
if has_memory then call('EXPIRE', memory, A.ids_ttl_s) end
-- The decisions by campaign and kind, as the worker counted them; a duplicate's are taken back below.
local by_campaign = {}
for n = 1, tonumber(ARGV[camp_at]) do
  local j = camp_at + n * 2 - 1
  by_campaign[ARGV[j]] = tonumber(ARGV[j + 1])
end
-- A duplicate event's decisions, taken back from by_campaign (cut as commit_args.by_campaign cuts them).
local function untally(outcome, tally)
  for what, name in string.gmatch(outcome, '%["([%a_]+)",%-?%d+,{"delivery_id":".-","campaign":"(.-)","event":') do
    local field = what .. ':' .. name
    tally[field] = (tally[field] or 0) - 1
  end
end
if shared_outcome == '' then
  -- the counter outcomes tallied by code; the decisions taken, a duplicate's passed over
  local codes, tally, at, d = ARGV[ev_at + 6], {}, ev_at + 7, 1
  for k = 1, n_ev do
    local code = byte(codes, k)
    if dups[d] == k then
      d = d + 1
      if code == 0 then
        untally(ARGV[at], by_campaign)
        at = at + 1
      end
    elseif code == 0 then
      take_outcome(ARGV[at], counts, decisions, K.triggers, K.deliveries, dry)
      at = at + 1
    else
      tally[code] = (tally[code] or 0) + 1
    end
  end
  for code, count in pairs(tally) do
    local name = OUTCOME_NAMES[code]
    counts[name] = (counts[name] or 0) + count
  end
end

-- Then a write Redis refuses when memory is full (SADD; ZREM is allowed), for a chunk without events.
call('SADD', K.done, member)
call('ZREM', K.pending, import_id .. '/' .. member)
local cap = tonumber(A.max_problem_rows)
push_all(K.errors, err_at + 1, n_err, ttl, K.problem_runs, 'e' .. member, cap, imp, 'errors_not_kept')
push_all(K.warnings, warn_at + 1, n_warn, ttl, K.problem_runs, 'w' .. member, cap, imp, 'warnings_not_kept')

local created, new_people, known = 0, {}, {}
local n_new, i = tonumber(ARGV[create_at]), create_at + 1
local shadow_people = shadow .. 'people'
if dry then
  for _ = 1, n_new do
    local key = ARGV[i]; i = i + 3
    if call('HEXISTS', K.people_index, key) == 0 and call('HSETNX', shadow_people, key, 1) == 1 then
      created = created + 1
    end
  end
  if created > 0 then call('EXPIRE', shadow_people, ttl) end
else
  -- Who is missing first, then one INCRBY for all their cio_ids. (HGET, not HEXISTS: a person another
  -- chunk created since the lookup is named in the entry's cio map at the same cost.)
  local missing = {}
  for _ = 1, n_new do
    local cio = call('HGET', K.people_index, ARGV[i])
    if cio then
      known[#known + 1] = cjson.encode(ARGV[i]) .. ':"' .. cio .. '"'
    else
      missing[#missing + 1] = i
    end
    i = i + 3
  end
  created = #missing
  if created > 0 then
    local last = next_people(K.people_seq, created, now_ms)
    local created_at = tostring(math.floor(tonumber(now_ms) / 1000))
    for n, at in ipairs(missing) do
      local key, value = ARGV[at], ARGV[at + 1]
      local cio = cio_of(last - created + n)
      call('HSET', K.people_index, key, cio)
      new_people[n] = '{"cio_id":"' .. cio .. '","' .. kind .. '":' .. ARGV[at + 2] .. ',"created_at":"' ..
                      created_at .. '","_v":"1"}'
      call('SET', A.person_prefix .. cio, new_people[n])  -- a person is one string: their state's JSON
      known[#known + 1] = cjson.encode(key) .. ':"' .. cio .. '"'
    end
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
  call('HSET', K.duplicates, member, now_ms .. ':' .. exp_h .. ':' .. table.concat(dup_keys) .. table.concat(dup_rows))
  call('EXPIRE', K.duplicates, ttl)
  call('ZADD', K.traced, now_ms, import_id)
end
if shared_outcome ~= '' and imported > 0 then counts[shared_outcome] = imported end
if shadow_marks then call('EXPIRE', shadow_dd, ttl) end
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
  local cio_map = A.known
  if #known > 0 then
    cio_map = (cio_map == '{}' and '{' or sub(cio_map, 1, -2) .. ',') .. table.concat(known, ',') .. '}'
  end
  local fields = {'import', import_id, 'chunk', member, 'count', imported, 'events', events, 'cio', cio_map,
                  'keys', packed_keys, 'hours', now_h .. ':' .. exp_h}
  if #decisions > 0 then
    fields[#fields + 1] = 'decisions'; fields[#fields + 1] = '[' .. table.concat(decisions, ',') .. ']'
  end
  if #new_people > 0 then
    fields[#fields + 1] = 'people'; fields[#fields + 1] = '[' .. table.concat(new_people, ',') .. ']'
  end
  outbox_add(K.outbox, imp, unpack(fields))
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
      call('RPUSH', list, ARGV[j + 2])
      call('EXPIRE', list, ARGV[anon_at + 2])
    end
  end
end
if n_anon > 0 then
  imported, duplicates = imported + held, duplicates + n_anon - held
  call('HINCRBY', imp, 'anonymous_stored', held)
end

if A.state ~= 'p' then call('DEL', K.chunk_rows) end  -- a first step leaves the rows to the second
if created > 0 then call('HINCRBY', imp, 'people_created', created) end
for name, count in pairs(counts) do call('HINCRBY', imp, 'trig_' .. name, count) end
for field, count in pairs(by_campaign) do
  if count > 0 then call('HINCRBY', imp, 'tc:' .. field, count) end
end
local finalize = count_chunk(imp, K.metrics, K.pending, import_id, now_ms, dry, A.state,
                             imported, duplicates, n_err, n_warn)
return {1, imported, duplicates, finalize}
