"""The Lua scripts that keep a channel's epoch, offsets, stream and live messages in agreement.

Both scripts take ``KEYS = [meta, log]`` (one hash slot; a publish with an idempotency record adds
the record's key and its legacy-scope twin, in the same slot) and create the channel's epoch when it is
missing: after a flush, or a restart of a Redis without persistence, the channel continues in a new
epoch and resuming clients get ``reset``, never a stale resume. Creating an epoch also deletes any
stream left without its meta key, so offsets restart at 1 in an empty log.
"""

from __future__ import annotations

_COMMON = """
local function head(meta, log, new_epoch)
    local found = redis.call('HMGET', meta, 'epoch', 'top')
    if found[1] then
        return found[1], tonumber(found[2])
    end
    redis.call('DEL', log)
    redis.call('HSET', meta, 'epoch', new_epoch, 'top', 0)
    return new_epoch, 0
end

local function offset_of(id)
    return tonumber(string.match(id, '^(%d+)'))
end

-- drop the entries appended before cutoff (ms); the oldest come first
local function trim_age(log, cutoff)
    local oldest = redis.call('XRANGE', log, '-', '+', 'COUNT', 1)
    if #oldest == 0 or tonumber(oldest[1][2][4]) >= cutoff then
        return
    end
    while true do
        local entries = redis.call('XRANGE', log, '-', '+', 'COUNT', 64)
        if #entries == 0 then
            return
        end
        for _, entry in ipairs(entries) do
            if tonumber(entry[2][4]) >= cutoff then
                redis.call('XTRIM', log, 'MINID', entry[1])
                return
            end
        end
        redis.call('XTRIM', log, 'MINID', string.format('%d-0', offset_of(entries[#entries][1]) + 1))
    end
end
"""

# KEYS: meta, log[, record, legacy record]
# ARGV: new epoch, live channel, sharded (1/0), now (ms), max events, max age (ms), record value, record
# ttl (ms; 0: no record), body...
# Returns [epoch, offset of the first appended event], or when a record is stored already and nothing
# was appended [its epoch, its first offset, its value].
PUBLISH = _COMMON + """
local meta, log = KEYS[1], KEYS[2]
local keep = tonumber(ARGV[8])
if keep > 0 then
    for i = 3, 4 do
        local found = redis.call('HMGET', KEYS[i], 'v', 'e', 'f')
        if found[1] then
            return {found[2], tonumber(found[3]), found[1]}
        end
    end
end
local epoch, top = head(meta, log, ARGV[1])
local now, max_events, max_age = tonumber(ARGV[4]), ARGV[5], tonumber(ARGV[6])
local first = top + 1
local parts = {epoch, string.format('%d', first)}
for i = 9, #ARGV do
    top = top + 1
    redis.call('XADD', log, string.format('%d-0', top), 'b', ARGV[i], 't', ARGV[4])
    parts[#parts + 1] = ARGV[i]
end
redis.call('HSET', meta, 'top', top)
redis.call('XTRIM', log, 'MAXLEN', max_events)
trim_age(log, now - max_age)
redis.call('PEXPIRE', log, max_age)
if keep > 0 then
    redis.call('HSET', KEYS[3], 'v', ARGV[7], 'e', epoch, 'f', first)
    redis.call('PEXPIRE', KEYS[3], keep)
end
local message = table.concat(parts, '\\n')
if ARGV[3] == '1' then
    redis.call('SPUBLISH', ARGV[2], message)
else
    redis.call('PUBLISH', ARGV[2], message)
end
return {epoch, first}
"""

# ARGV: new epoch, after, limit, now (ms), max age (ms).
# Returns [epoch, top, earliest, entries after `after` (at most `limit`)].
READ = _COMMON + """
local meta, log = KEYS[1], KEYS[2]
local epoch, top = head(meta, log, ARGV[1])
trim_age(log, tonumber(ARGV[4]) - tonumber(ARGV[5]))
local first = redis.call('XRANGE', log, '-', '+', 'COUNT', 1)
local earliest = top + 1
if #first > 0 then
    earliest = offset_of(first[1][1])
end
local entries = {}
local limit = tonumber(ARGV[3])
if limit > 0 then
    entries = redis.call('XRANGE', log, string.format('%d-0', tonumber(ARGV[2]) + 1), '+', 'COUNT', limit)
end
return {epoch, top, earliest, entries}
"""
