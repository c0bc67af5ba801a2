-- epoch.lua: a process finds the data epoch it met gone or another: Redis lost its data since.
--
-- An epoch is "<id>:<created ms>:<losses>", losses counting the losses of Redis's data found before
-- it began. This puts an epoch back if none is there (the data Redis holds from now on is the new
-- epoch's) and counts the loss once however many processes find it: the epoch Redis holds ends with
-- at least one loss more than the epoch met (a process that met none wrote it with 0).
--
-- KEYS[1] the data epoch
-- ARGV[1] the id of the epoch the process met
-- ARGV[2] a new epoch, with the losses of the one met plus one, used when there is none
-- ARGV[3] the losses of the one met plus one
-- Returns {the epoch Redis holds now, 1 when this call counted the loss (0: another process had,
--          -1: nothing was lost, the epoch is the one met)}.

local now = redis.call('GET', KEYS[1])
if not now then
  redis.call('SET', KEYS[1], ARGV[2])
  return {ARGV[2], 1}
end
local id, created, losses = string.match(now, '^(.*):(%d+):(%d+)$')
if id == nil then
  id, created = string.match(now, '^(.*):(%d+)$')
  losses = '0'
end
if id == ARGV[1] then return {now, -1} end
if id ~= nil and tonumber(losses) < tonumber(ARGV[3]) then
  now = id .. ':' .. created .. ':' .. ARGV[3]
  redis.call('SET', KEYS[1], now)
  return {now, 1}
end
return {now, 0}
