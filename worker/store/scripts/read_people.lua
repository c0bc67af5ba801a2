-- read_people.lua: the people stored at KEYS, in one round trip (worker/store/people.py's read_people).
--
-- A person is one string (their JSON state); one stored before that is a hash of fields, read as it is:
-- MGET answers nil (false here) for a hash as for nobody, and only those keys are asked again, with HGETALL.
--
-- KEYS     person keys (a dry run's shadow ones too)
-- Returns  one answer a key, in order: the JSON string, the hash's fields and values flat, or nil (nobody)
local SLICE = 4000  -- (unpack takes at most 8,000 values)
local found = redis.call('MGET', unpack(KEYS, 1, math.min(#KEYS, SLICE)))
for first = SLICE + 1, #KEYS, SLICE do
  local more = redis.call('MGET', unpack(KEYS, first, math.min(first + SLICE - 1, #KEYS)))
  for i = 1, #more do found[first + i - 1] = more[i] end
end
for i = 1, #KEYS do
  if not found[i] then
    local fields = redis.call('HGETALL', KEYS[i])
    if #fields > 0 then found[i] = fields end
  end
end
return found
