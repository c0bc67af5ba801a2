-- people_seq.lua: the last of ARGV[1] new people sequence numbers, floored by Redis's clock (lib.lua's
-- next_people: a sequence that went back with Redis never gives a number twice).
--
-- KEYS[1] the people sequence (keys.PEOPLE_SEQ, or a dry run's shadow one)
-- ARGV[1] how many numbers
-- ARGV[2] now, ms (Redis's clock)
-- Returns the last number given (the first is last - ARGV[1] + 1).

return next_people(KEYS[1], tonumber(ARGV[1]), ARGV[2])
