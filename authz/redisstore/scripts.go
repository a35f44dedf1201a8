package redisstore

import "github.com/redis/go-redis/v9"

// Key layout. Every task has one hash, PREFIX{ROOT}:ID, where ROOT is the
// ID of the root of the task's tree: the hash tag puts all the keys of a
// tree in one Redis Cluster slot, so one script can touch a whole chain.
// Its fields:
//
//	b          "1": the task was begun (a tombstone left by End lacks it)
//	d          the task's deadline, Unix microseconds
//	e          "1" once the task ended
//	v          taint version: 0 at Begin, +1 with every change of the taint
//	ts         taint sensitivity (0..3)
//	tu         "1" once untrusted content was observed
//	tn         number of taint sources, at most maxSources
//	o:N        the Nth taint source (1-based, in the order observed)
//	O:SOURCE   "1" for each source, to drop repeats
//	m:PATTERN  the MaxCalls budget of PATTERN, recorded at Begin
//	s:PATTERN  calls spent of that budget
//	c:TOOL     authorized calls of TOOL (task.calls)
//	r:KEY      GCRA theoretical arrival time of the rate limit KEY, Unix µs
//	g:DIGEST   who granted a standing approval of the call DIGEST
//
// Every hash expires at its task's deadline plus the store's margin. Times
// compared in scripts are the server's (TIME), so replicas whose clocks
// disagree still agree on rate limits and deadlines.
//
// A state travels as one string (in script replies and pub/sub messages):
// the fields ID, known, ended, version, sensitivity, untrusted, n and then
// n sources, each written as its length in decimal, ":", and its bytes,
// so any byte may appear in an ID or a source.

// scriptLib holds the Lua helpers the scripts share.
const scriptLib = `
local function now_us()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local function num(x)
  return string.format('%.0f', x)
end
local function put(p, s)
  p[#p + 1] = #s .. ':' .. s
end
-- state encodes the state of the task id kept in hash k.
local function state(k, id)
  local st = redis.call('HMGET', k, 'b', 'e', 'v', 'ts', 'tu', 'tn')
  local p = {}
  put(p, id)
  if not st[1] and not st[2] then
    put(p, '0')
    return table.concat(p)
  end
  put(p, '1')
  put(p, st[2] == '1' and '1' or '0')
  put(p, st[3] or '0')
  put(p, st[4] or '0')
  put(p, st[5] == '1' and '1' or '0')
  local n = tonumber(st[6]) or 0
  put(p, tostring(n))
  if n > 0 then
    local f = {}
    for i = 1, n do f[i] = 'o:' .. i end
    local src = redis.call('HMGET', k, unpack(f))
    for i = 1, n do put(p, src[i] or '') end
  end
  return table.concat(p)
end
`

// beginScript records each task of a chain the store does not know yet.
//
// KEYS: the chain's hashes, root first. ARGV: then per task: ID,
// deadline (µs), expire-at (ms), number of budgets, then per budget:
// pattern, max. It returns the state of each task after the call.
const beginScript = scriptLib + `
local p = 1
local out = {}
for i = 1, #KEYS do
  local k = KEYS[i]
  local id, d, exp, nb = ARGV[p], ARGV[p + 1], ARGV[p + 2], tonumber(ARGV[p + 3])
  p = p + 4
  local fresh = redis.call('EXISTS', k) == 0
  if fresh then redis.call('HSET', k, 'b', '1', 'd', d, 'v', '0') end
  for j = 1, nb do
    if fresh then redis.call('HSET', k, 'm:' .. ARGV[p], ARGV[p + 1]) end
    p = p + 2
  end
  if fresh then redis.call('PEXPIREAT', k, exp) end
  out[i] = state(k, id)
end
return out
`

// authorizeScript applies one authorization, all or nothing.
//
// KEYS: the chain's hashes, root first, the call's own task last.
// ARGV: tool, then per task: ID, taint version seen, expire-at (ms); then
// the rate limits: count, then per limit: task index (1-based), key,
// interval (µs), burst; then the budgets: count, then per budget: task
// index, pattern; then the approval: mode (0 none, 1 needs a standing
// grant, 2 just granted), digest, for-task ("1"), by.
//
// It returns {outcome, failed (1-based), wait µs, ...}; outcome and the
// rest as in authz.StoreOutcome: 0 OK, then approved-by and the calls of
// tool on each task; 3 stale, then the state of each task; 1 ended, 2
// unknown, 4 approval needed, 5 rate limited, 6 budget spent. Nothing is
// written unless the outcome is 0.
const authorizeScript = scriptLib + `
local now = now_us()
local n = #KEYS
local tool = ARGV[1]
local ids, exps = {}, {}
local stale = false
for i = 1, n do
  local b = 2 + (i - 1) * 3
  ids[i], exps[i] = ARGV[b], ARGV[b + 2]
  local st = redis.call('HMGET', KEYS[i], 'b', 'e', 'd', 'v')
  if st[2] == '1' then return {1, i, 0} end
  if not st[1] then return {2, i, 0} end
  if tonumber(st[3]) <= now then return {1, i, 0} end
  if (tonumber(st[4]) or 0) > tonumber(ARGV[b + 1]) then stale = true end
end
if stale then
  local out = {3, 0, 0}
  for i = 1, n do out[#out + 1] = state(KEYS[i], ids[i]) end
  return out
end
local p = 2 + n * 3
local nl = tonumber(ARGV[p]); p = p + 1
local lims = {}
p = p + nl * 4
local nb = tonumber(ARGV[p]); p = p + 1
local buds = {}
p = p + nb * 2
-- approval
local mode, digest, fortask, by = ARGV[p], ARGV[p + 1], ARGV[p + 2], ARGV[p + 3]
local approvedby = ''
if mode == '1' then
  local g = redis.call('HGET', KEYS[n], 'g:' .. digest)
  if not g then return {4, 0, 0} end
  approvedby = g
end
-- rate limits (GCRA): check all, then take all
p = 2 + n * 3 + 1
local tats = {}
for j = 1, nl do
  local k, f = KEYS[tonumber(ARGV[p])], 'r:' .. ARGV[p + 1]
  local iv, burst = tonumber(ARGV[p + 2]), tonumber(ARGV[p + 3])
  p = p + 4
  local id = k .. '\0' .. f
  local tat = tats[id] or tonumber(redis.call('HGET', k, f)) or now
  if tat < now then tat = now end
  local nt = tat + iv
  local wait = nt - burst * iv - now
  if wait > 0 then return {5, j, wait} end
  tats[id] = nt
  lims[#lims + 1] = {k, f, id}
end
-- budgets
p = p + 1
local spent = {}
for j = 1, nb do
  local k, pat = KEYS[tonumber(ARGV[p])], ARGV[p + 1]
  p = p + 2
  local id = k .. '\0' .. pat
  local m = tonumber(redis.call('HGET', k, 'm:' .. pat))
  local s = spent[id] or tonumber(redis.call('HGET', k, 's:' .. pat)) or 0
  if not m or s >= m then return {6, j, 0} end
  spent[id] = s + 1
  buds[#buds + 1] = {k, 's:' .. pat}
end
-- commit
for _, l in ipairs(lims) do redis.call('HSET', l[1], l[2], num(tats[l[3]])) end
for _, b in ipairs(buds) do redis.call('HINCRBY', b[1], b[2], 1) end
if mode == '2' and fortask == '1' then redis.call('HSET', KEYS[n], 'g:' .. digest, by) end
local out = {0, 0, 0, approvedby}
for i = 1, n do
  out[#out + 1] = redis.call('HINCRBY', KEYS[i], 'c:' .. tool, 1)
  redis.call('PEXPIREAT', KEYS[i], exps[i])
end
return out
`

// observeScript merges a taint into the tasks of a chain.
//
// KEYS: the chain's hashes, root first. ARGV: channel, sensitivity,
// untrusted ("1"), max sources, number of sources, the sources, then the
// task IDs. Each known task that has not ended takes the highest
// sensitivity and the untrusted flag, and the new sources up to max; one
// whose taint changed gets the next version and its state is published.
// It returns the state of each task.
const observeScript = scriptLib + `
local ch, sens, untr, maxs, ns = ARGV[1], tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])
local out = {}
for i = 1, #KEYS do
  local k, id = KEYS[i], ARGV[5 + ns + i]
  local st = redis.call('HMGET', k, 'b', 'e', 'ts', 'tu', 'tn')
  if st[1] and st[2] ~= '1' then
    local changed = false
    if sens > (tonumber(st[3]) or 0) then
      redis.call('HSET', k, 'ts', sens); changed = true
    end
    if untr == '1' and st[4] ~= '1' then
      redis.call('HSET', k, 'tu', '1'); changed = true
    end
    local tn = tonumber(st[5]) or 0
    for j = 1, ns do
      if tn >= maxs then break end
      local src = ARGV[5 + j]
      if redis.call('HSETNX', k, 'O:' .. src, '1') == 1 then
        tn = tn + 1
        redis.call('HSET', k, 'o:' .. tn, src, 'tn', tn)
        changed = true
      end
    end
    if changed then
      redis.call('HINCRBY', k, 'v', 1)
      out[i] = state(k, id)
      redis.call('PUBLISH', ch, out[i])
    end
  end
  if not out[i] then out[i] = state(k, id) end
end
return out
`

// endScript ends a task: KEYS[1] its hash; ARGV channel, ID, tombstone
// lifetime (ms). A live task is marked ended and its state published. A
// task the store does not know gets a tombstone (ended, no begin) for
// the lifetime, so that a later Begin of the same ID (a resumed token)
// finds it ended. It returns 1 when the call ended the task.
const endScript = scriptLib + `
local k = KEYS[1]
local st = redis.call('HMGET', k, 'b', 'e')
if st[2] == '1' then return 0 end
redis.call('HSET', k, 'e', '1')
if not st[1] then redis.call('PEXPIRE', k, ARGV[3]) end
redis.call('PUBLISH', ARGV[1], state(k, ARGV[2]))
return 1
`

// stateScript returns the state of each task: KEYS their hashes, ARGV
// their IDs. The keys may belong to different trees, so it is only used
// for one key at a time on Redis Cluster (see Store.State).
const stateScript = scriptLib + `
local out = {}
for i = 1, #KEYS do out[i] = state(KEYS[i], ARGV[i]) end
return out
`

var (
	authorizeLua = redis.NewScript(authorizeScript)
	beginLua     = redis.NewScript(beginScript)
	endLua       = redis.NewScript(endScript)
	observeLua   = redis.NewScript(observeScript)
	stateLua     = redis.NewScript(stateScript)
)
