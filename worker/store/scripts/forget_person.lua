-- forget_person.lua: remove one person an undone import created, only while nothing changed them.
--
-- KEYS[1]  the person's record (keys.person: one string, or a hash of fields as stored before)
-- KEYS[2]  the people index of the identifier kind they were created by (identifier -> cio_id)
-- ARGV[1]  their identifier as the index keys it (an e-mail lowercased)
-- ARGV[2]  their cio_id
-- Returns  1 removed, 0 kept (changed since they were created: their version is not 1, or gone already)
if person_version(KEYS[1]) ~= '1' then return 0 end
local held = redis.call('HGET', KEYS[2], ARGV[1])
if held == ARGV[2] then
  redis.call('HDEL', KEYS[2], ARGV[1])
elseif held then
  -- an id-only workspace: several people may share an e-mail ("cio,cio"): only this one leaves it
  local rest = {}
  for cio in string.gmatch(held, '[^,]+') do
    if cio ~= ARGV[2] then rest[#rest + 1] = cio end
  end
  if #rest == 0 then
    redis.call('HDEL', KEYS[2], ARGV[1])
  else
    redis.call('HSET', KEYS[2], ARGV[1], table.concat(rest, ','))
  end
end
return redis.call('DEL', KEYS[1])
