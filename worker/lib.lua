-- lib.lua: helpers prepended to every backfill script when it is loaded (store.py, _script).

-- RPUSH ARGV[first .. first+count-1] onto key, then EXPIRE it (when anything was pushed).
-- In slices: unpack() of thousands of values overflows Lua's C stack.
local function push_all(key, first, count, ttl)
  local at = first
  while at < first + count do
    local last = math.min(at + 499, first + count - 1)
    redis.call('RPUSH', key, unpack(ARGV, at, last))
    at = last + 1
  end
  if count > 0 then redis.call('EXPIRE', key, ttl) end
end
