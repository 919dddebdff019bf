"""The Lua scripts that keep a channel's epoch, offsets, stream and live messages in agreement.

The scripts take ``KEYS = [meta, log, …]`` (one hash slot: the publish adds the event index and the
repeat counts, and with an idempotency record the record's key and its legacy-scope twin) and
create the channel's epoch when it is missing: after a flush, or a restart of a Redis without
persistence, the channel continues in a new epoch and resuming clients get ``reset``, never a stale
resume. Creating an epoch also deletes any stream left without its meta key, so offsets restart at 1
in an empty log.
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

-- the field `name` of a stream entry's field list, or nil
local function field(fields, name)
    for i = 1, #fields, 2 do
        if fields[i] == name then
            return fields[i + 1]
        end
    end
    return nil
end

-- remove dropped entries from the event index (ids, repeats: nil when the caller keeps none)
local function unindex(entries, ids, repeats)
    if not ids then
        return
    end
    for _, entry in ipairs(entries) do
        local id = field(entry[2], 'i')
        if id and redis.call('HGET', ids, id) == tostring(offset_of(entry[1])) then
            redis.call('HDEL', ids, id)
        end
        redis.call('HDEL', repeats, offset_of(entry[1]))
    end
end

-- drop the entries appended before cutoff (ms); the oldest come first
local function trim_age(log, cutoff, ids, repeats)
    local oldest = redis.call('XRANGE', log, '-', '+', 'COUNT', 1)
    if #oldest == 0 or tonumber(oldest[1][2][4]) >= cutoff then
        return
    end
    while true do
        local entries = redis.call('XRANGE', log, '-', '+', 'COUNT', 64)
        if #entries == 0 then
            return
        end
        for n, entry in ipairs(entries) do
            if tonumber(entry[2][4]) >= cutoff then
                unindex({unpack(entries, 1, n - 1)}, ids, repeats)
                redis.call('XTRIM', log, 'MINID', entry[1])
                return
            end
        end
        unindex(entries, ids, repeats)
        redis.call('XTRIM', log, 'MINID', string.format('%d-0', offset_of(entries[#entries][1]) + 1))
    end
end
"""

# KEYS: meta, log, ids, repeats[, record, legacy record]
# ARGV: new epoch, live channel, sharded (1/0), now (ms), max events, max age (ms), record value, record
# ttl (ms; 0: no record), origin key, delivery id, then (body, event id, type) per event
# An entry's fields: b body, t time (ms), i id, y type, o origin key, d delivery id.
# Returns [epoch, offset of the first appended event], or when a record is stored already and nothing
# was appended [its epoch, its first offset, its value] (and counts a repeat on that offset).
PUBLISH = _COMMON + """
local meta, log, ids, repeats = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local keep = tonumber(ARGV[8])
if keep > 0 then
    for i = 5, 6 do
        local found = redis.call('HMGET', KEYS[i], 'v', 'e', 'f')
        if found[1] then
            if redis.call('HGET', meta, 'epoch') == found[2] then
                redis.call('HINCRBY', repeats, found[3], 1)
                redis.call('PEXPIRE', repeats, tonumber(ARGV[6]))
            end
            return {found[2], tonumber(found[3]), found[1]}
        end
    end
end
local epoch, top = head(meta, log, ARGV[1])
local now, max_events, max_age = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local first = top + 1
local parts = {epoch, string.format('%d', first)}
for i = 11, #ARGV, 3 do
    top = top + 1
    redis.call('XADD', log, string.format('%d-0', top), 'b', ARGV[i], 't', ARGV[4], 'i', ARGV[i + 1],
        'y', ARGV[i + 2], 'o', ARGV[9], 'd', ARGV[10])
    redis.call('HSET', ids, ARGV[i + 1], top)
    parts[#parts + 1] = ARGV[i]
end
redis.call('HSET', meta, 'top', top)
local excess = redis.call('XLEN', log) - max_events
if excess > 0 then
    unindex(redis.call('XRANGE', log, '-', '+', 'COUNT', excess), ids, repeats)
    redis.call('XTRIM', log, 'MAXLEN', max_events)
end
trim_age(log, now - max_age, ids, repeats)
redis.call('PEXPIRE', log, max_age)
redis.call('PEXPIRE', ids, max_age)
if keep > 0 then
    redis.call('HSET', KEYS[5], 'v', ARGV[7], 'e', epoch, 'f', first)
    redis.call('PEXPIRE', KEYS[5], keep)
end
local message = table.concat(parts, '\\n')
if ARGV[3] == '1' then
    redis.call('SPUBLISH', ARGV[2], message)
else
    redis.call('PUBLISH', ARGV[2], message)
end
return {epoch, first}
"""

# KEYS: meta, log, ids, repeats. ARGV: new epoch, after, limit, now (ms), max age (ms).
# Returns [epoch, top, earliest, entries after `after` (at most `limit`)].
READ = _COMMON + """
local meta, log = KEYS[1], KEYS[2]
local epoch, top = head(meta, log, ARGV[1])
trim_age(log, tonumber(ARGV[4]) - tonumber(ARGV[5]), KEYS[3], KEYS[4])
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

# KEYS: meta, log, repeats. ARGV: what ('id' with an offset, or 'type' with a type and a limit), ...
# Returns [epoch, [entry, repeats]...]: the entry at that offset, or the newest entries of that type.
FIND = _COMMON + """
local meta, log, repeats = KEYS[1], KEYS[2], KEYS[3]
local epoch = redis.call('HGET', meta, 'epoch')
if not epoch then
    return {'', {}}
end
local found = {}
if ARGV[1] == 'id' then
    local id = string.format('%d-0', tonumber(ARGV[2]))
    for _, entry in ipairs(redis.call('XRANGE', log, id, id)) do
        found[#found + 1] = {entry, redis.call('HGET', repeats, ARGV[2]) or '0'}
    end
    return {epoch, found}
end
local limit = tonumber(ARGV[3])
local last = '+'
while #found < limit do
    local entries = redis.call('XREVRANGE', log, last, '-', 'COUNT', 256)
    for _, entry in ipairs(entries) do
        if field(entry[2], 'y') == ARGV[2] then
            found[#found + 1] = {entry, redis.call('HGET', repeats, offset_of(entry[1])) or '0'}
        end
        if #found >= limit then
            break
        end
    end
    if #entries < 256 then
        break
    end
    last = '(' .. entries[#entries][1]
end
return {epoch, found}
"""

# KEYS: log. ARGV: since (ms). Returns how many entries were appended at or after since.
RECENT = """
local count, last = 0, '+'
while true do
    local entries = redis.call('XREVRANGE', KEYS[1], last, '-', 'COUNT', 256)
    for _, entry in ipairs(entries) do
        if tonumber(entry[2][4]) < tonumber(ARGV[1]) then
            return count
        end
        count = count + 1
    end
    if #entries < 256 then
        return count
    end
    last = '(' .. entries[#entries][1]
end
"""
