-- move_due.lua: move scheduled triggers that are due to the deliveries stream.
--
-- KEYS[1] scheduled triggers zset (score = due ms)
-- KEYS[2] deliveries stream
-- KEYS[3] outbox stream: one entry saying which scheduled messages were sent, and when
-- ARGV[1] now, ms
-- ARGV[2] most to move in one call (keeps the script short)
-- Returns how many moved.
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
for _, message in ipairs(due) do
  redis.call('XADD', KEYS[2], '*', 'message', message)
end
if #due > 0 then
  redis.call('ZREM', KEYS[1], unpack(due))
  outbox_add(KEYS[3], false, 'sent', '[' .. table.concat(due, ',') .. ']', 'at', ARGV[1])
end
return #due
