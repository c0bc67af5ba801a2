-- people_commit.lua: one chunk of a people import, committed whole, in file order, or not at all.
--
-- Chunks of a people import commit one after the other: this chunk must be the
-- import's next_chunk. Its changes were decided against a snapshot of the
-- directory; they are written only if nothing they overwrite changed since
-- (each person's version _v, each index entry's value). Otherwise nothing is
-- written and the caller reads a new snapshot and decides again.
--
-- Person records and the dry run's shadow keys are derived from prefixes:
-- backfill runs on one Redis instance, not a cluster.
--
-- KEYS (names in KEY_NAMES, laid out by worker/store/people_args.py)
--   import_hash      counters, next_chunk, chunks_done/chunks_total
--   done             import done-set: chunk numbers already committed
--   chunk_rows       the chunk's rows (deleted)
--   errors           import errors list (orjson rows)
--   warnings         import warnings list (orjson rows)
--   seen             the import's memory of identifiers on earlier rows (hash)
--   by_id            people index by id (a dry run's shadow index for a dry run)
--   by_email         people index by e-mail (likewise)
--   pending          pending work (zset): the chunk's member leaves it, the report's enters it when this
--                    commit completes the import
--   metrics          counters across imports: rows by outcome, for real runs
--   problem_runs     import problem runs (hash): where each chunk's error and warning rows start
--   outbox           outbox stream: real runs append the chunk's people, each one's whole new state with
--                    its version (the database keeps a person's highest version), with the identifiers the
--                    chunk gave them ("ids"), and the anonymous events the chunk moved to people (with "cio":
--                    their people's cio_ids)
--   anonymous_links  anonymous ids tied to people (hash): anonymous id -> user id
--   triggers         scheduled triggers zset
--   deliveries       deliveries stream (the moved events' triggers)
--
-- ARGV (names in ARGV_NAMES)
--   chunk            chunk number
--   dry_run          "1" for a dry run: write the people to shadow keys, check nothing against the real ones
--   now_ms           now, ms
--   person_prefix    person record prefix (the dry run's shadow prefix for a dry run); a person is one
--                    string, their whole state as a JSON object (lib.lua's person_version reads a
--                    person stored as a hash of fields too, as before)
--   problem_ttl_s    TTL of problem rows, seconds
--   imported         rows imported; created: people created; skipped: rows skipped (only_new: person exists)
--   scratch_ttl_s    TTL of the import's scratch keys (memory, dry-run shadows), seconds, renewed at each
--                    write: they serve only while the import runs (finalize deletes the memory)
--   import_id        the import id (pending members are "<import id>/<chunk>" and "<import id>/report")
--   state            the chunk's state: "0" applied; "1" could not be applied, its rows are all errors
--                    (chunks_failed; "l": its rows were gone, counted in chunks_lost too); "c<n>": its
--                    import was cancelled, its n rows are skipped (rows_cancelled)
--   max_problem_rows the most error (and warning) rows the import keeps (0: all); past it they are counted
--                    in errors_not_kept / warnings_not_kept (lib.lua's push_all)
--   held_prefix      the prefix of the held anonymous events' lists (worker/segment/anonymous.py)
--   given_ids        the identifiers this chunk gives people, a JSON array of [kind, identifier, cio_id]
--                    ("id", "email", "anonymous"), or "" for none: the outbox's "ids" (the database keeps
--                    every identifier a person has had, so an old one still finds them)
--   moved_cio        the cio_id of each person the moved events name, a JSON object (user id -> cio_id)
--   n_seen .. n_campaigns  how many entries each packed section has (below)
--   items, ends      the packed sections: every item back to back, and where each ends (a little-endian
--                    uint32 an item, counted from the start of items); in this order:
--     seen           pairs (memory field, value)
--     index          quadruples ("id"|"email", key, value read or "", new value or "" to remove)
--     people         triples (cio_id, version read or "" for a new person, full new state as a JSON object)
--     ties           quadruples (anonymous id, how many held events were read, the last of them or "",
--                    user id): the ids this chunk ties to people, checked like the directory (still untied
--                    or tied to that user, the same number of events held ending with the same one: a list
--                    that expired and was held anew differs), then tied, their lists deleted
--     moved          pairs (event JSON as the person's, trigger outcome as commit.lua takes them): the held
--                    events moved, appended to the outbox and counted in anonymous_merged
--     campaigns      pairs ("<kind>:<campaign name as its JSON holds it>", count): the moved events' decisions
--                    by kind and campaign (commit_args.by_campaign), added to the import's "tc:" counters
--   n_errors, n_warnings  how many error and warning rows follow the fixed arguments (errors first)
-- Returns  {1, finalize 0/1} committed; {0, 0} already committed; {-1, 0} the directory changed
--          since the snapshot; {-2, next_chunk} not this chunk's turn; {-3, 0} Redis does not know the
--          import (it lost its data since the chunk began): nothing written.

local KEY_NAMES = {'import_hash', 'done', 'chunk_rows', 'errors', 'warnings', 'seen', 'by_id', 'by_email',
                   'pending', 'metrics', 'problem_runs', 'outbox', 'anonymous_links', 'triggers', 'deliveries'}
local ARGV_NAMES = {'chunk', 'dry_run', 'now_ms', 'person_prefix', 'problem_ttl_s', 'imported', 'created',
                    'skipped', 'scratch_ttl_s', 'import_id', 'state', 'max_problem_rows', 'held_prefix',
                    'given_ids', 'moved_cio', 'n_seen', 'n_index', 'n_people', 'n_ties', 'n_moved', 'n_campaigns', 'items',
                    'ends', 'n_errors', 'n_warnings'}
local K, A = {}, {}
for n, name in ipairs(KEY_NAMES) do K[name] = KEYS[n] end
for n, name in ipairs(ARGV_NAMES) do A[name] = ARGV[n] end

local imp, chunk, dry, prefix = K.import_hash, A.chunk, A.dry_run == '1', A.person_prefix
local scratch_ttl, import_id = A.scratch_ttl_s, A.import_id
if redis.call('SISMEMBER', K.done, chunk) == 1 then
  redis.call('ZREM', K.pending, import_id .. '/' .. chunk)
  return {0, 0}
end
if redis.call('EXISTS', imp) == 0 then return {-3, 0} end
local next_chunk = redis.call('HGET', imp, 'next_chunk') or '0'
if next_chunk ~= chunk then return {-2, tonumber(next_chunk)} end

-- The packed items, cut once: item[j] is the j-th.
local item, items, ends, sub, unpack_u32 = {}, A.items, A.ends, string.sub, struct.unpack
local from = 1
for k = 1, #ends / 4 do
  local to = unpack_u32('<I4', ends, k * 4 - 3)
  item[k] = sub(items, from, to)
  from = to + 1
end
-- Where each section starts in item, and how many entries it has.
local at = 1
local function section(count, width)
  local first = at
  at = at + tonumber(count) * width
  return first, tonumber(count)
end
local seen_at, n_seen = section(A.n_seen, 2)
local idx_at, n_idx = section(A.n_index, 4)
local per_at, n_per = section(A.n_people, 3)
local tie_at, n_tie = section(A.n_ties, 4)
local moved_at, n_moved = section(A.n_moved, 2)
local camp_at, n_camp = section(A.n_campaigns, 2)
local n_err, n_warn = tonumber(A.n_errors), tonumber(A.n_warnings)
local err_at = #ARGV_NAMES + 1
local warn_at = err_at + n_err
local held_prefix, given_ids, moved_cio = A.held_prefix, A.given_ids, A.moved_cio
local index_key = {id = K.by_id, email = K.by_email}

-- The index entries of a chunk, by index: {kind = {item positions of their quadruples}}. Checked
-- with one HMGET and written with one HSET and one HDEL an index, 500 entries at a time, instead
-- of a call an entry (a chunk's entries are distinct: the caller keeps one per index and key).
local by_index = {id = {}, email = {}}
for k = 0, n_idx - 1 do
  local j = idx_at + k * 4
  local list = by_index[item[j]]
  list[#list + 1] = j
end

if not dry then
  for kind, list in pairs(by_index) do
    for from = 1, #list, 500 do
      local fields = {}
      for n = from, math.min(from + 499, #list) do fields[#fields + 1] = item[list[n] + 1] end
      local read = redis.call('HMGET', index_key[kind], unpack(fields))  -- (a missing field is false)
      for n = from, math.min(from + 499, #list) do
        if (read[n - from + 1] or '') ~= item[list[n] + 2] then return {-1, 0} end
      end
    end
  end
  for k = 0, n_per - 1 do
    local j = per_at + k * 3
    if person_version(prefix .. item[j]) ~= item[j + 1] then return {-1, 0} end
  end
  for k = 0, n_tie - 1 do
    local j = tie_at + k * 4
    local owner = redis.call('HGET', K.anonymous_links, item[j])
    local list, count = held_prefix .. item[j], tonumber(item[j + 1])
    if (owner and owner ~= item[j + 3]) or redis.call('LLEN', list) ~= count
       or (count > 0 and redis.call('LINDEX', list, -1) ~= item[j + 2]) then
      return {-1, 0}
    end
  end
end

redis.call('SADD', K.done, chunk)
redis.call('ZREM', K.pending, import_id .. '/' .. chunk)
local cap = tonumber(A.max_problem_rows)
push_all(K.errors, err_at, n_err, A.problem_ttl_s, K.problem_runs, 'e' .. chunk, cap, imp, 'errors_not_kept')
push_all(K.warnings, warn_at, n_warn, A.problem_ttl_s, K.problem_runs, 'w' .. chunk, cap, imp, 'warnings_not_kept')
for from = seen_at, seen_at + n_seen * 2 - 1, 800 do  -- 400 pairs a call: unpack() overflows Lua's C stack
  redis.call('HSET', K.seen, unpack(item, from, math.min(from + 799, seen_at + n_seen * 2 - 1)))
end
if n_seen > 0 then redis.call('EXPIRE', K.seen, scratch_ttl) end

for kind, list in pairs(by_index) do
  for from = 1, #list, 500 do
    local sets, dels = {}, {}
    for n = from, math.min(from + 499, #list) do
      local j = list[n]
      if item[j + 3] == '' and not dry then
        dels[#dels + 1] = item[j + 1]
      else
        -- a dry run records a removal as "" so that it hides the real entry
        sets[#sets + 1] = item[j + 1]; sets[#sets + 1] = item[j + 3]
      end
    end
    if #dels > 0 then redis.call('HDEL', index_key[kind], unpack(dels)) end
    if #sets > 0 then redis.call('HSET', index_key[kind], unpack(sets)) end
  end
end
-- A person is one string, the whole new state (SET replaces a person stored as a hash before).
for k = 0, n_per - 1 do
  local j = per_at + k * 3
  if dry then
    redis.call('SET', prefix .. item[j], item[j + 2], 'EX', scratch_ttl)
  else
    redis.call('SET', prefix .. item[j], item[j + 2])
  end
end
if (n_per > 0 or given_ids ~= '') and not dry then
  local fields = {'import', import_id, 'chunk', chunk}
  if n_per > 0 then
    local states = {}
    for k = 0, n_per - 1 do states[k + 1] = item[per_at + k * 3 + 2] end
    fields[#fields + 1] = 'people'; fields[#fields + 1] = '[' .. table.concat(states, ',') .. ']'
  end
  if given_ids ~= '' then fields[#fields + 1] = 'ids'; fields[#fields + 1] = given_ids end
  outbox_add(K.outbox, imp, unpack(fields))
end
if not dry and n_tie > 0 then
  for k = 0, n_tie - 1 do
    local j = tie_at + k * 4
    redis.call('HSET', K.anonymous_links, item[j], item[j + 3])
    redis.call('DEL', held_prefix .. item[j])
  end
  if n_moved > 0 then
    local bodies, counts, decisions = {}, {}, {}
    for k = 0, n_moved - 1 do
      bodies[k + 1] = item[moved_at + k * 2]
      take_outcome(item[moved_at + k * 2 + 1], counts, decisions, K.triggers, K.deliveries, false)
    end
    local fields = {'import', import_id, 'chunk', chunk, 'count', n_moved, 'events', table.concat(bodies, '\n'),
                    'cio', moved_cio}
    if #decisions > 0 then
      fields[#fields + 1] = 'decisions'; fields[#fields + 1] = '[' .. table.concat(decisions, ',') .. ']'
    end
    outbox_add(K.outbox, imp, unpack(fields))
    for name, count in pairs(counts) do redis.call('HINCRBY', imp, 'trig_' .. name, count) end
    for k = 0, n_camp - 1 do
      redis.call('HINCRBY', imp, 'tc:' .. item[camp_at + k * 2], tonumber(item[camp_at + k * 2 + 1]))
    end
    redis.call('HINCRBY', imp, 'anonymous_merged', n_moved)
  end
end
if dry and n_idx > 0 then
  redis.call('EXPIRE', K.by_id, scratch_ttl); redis.call('EXPIRE', K.by_email, scratch_ttl)
end

local imported, created, skipped = tonumber(A.imported), tonumber(A.created), tonumber(A.skipped)
redis.call('DEL', K.chunk_rows)
redis.call('HINCRBY', imp, 'people_skipped', skipped)
redis.call('HINCRBY', imp, 'people_created', created)
redis.call('HSET', imp, 'next_chunk', tonumber(chunk) + 1)
-- skipped rows (only_new: the person exists) count as duplicates
return {1, count_chunk(imp, K.metrics, K.pending, import_id, A.now_ms, dry, A.state,
                       imported, skipped, n_err, n_warn)}
