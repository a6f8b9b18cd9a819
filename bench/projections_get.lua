-- wrk script of bench/projections: GET /v1/players/{user_id} for random known players.
--
--   wrk -t1 -cN -dS -s bench/projections_get.lua URL -- PLAYERS TOKEN SEED
--
-- PLAYERS  the players are ply_1 .. ply_PLAYERS; each request asks for one at random
-- TOKEN    bearer token with scope projections:read
-- SEED     seeds Lua's random numbers, so runs ask for the same players
--
-- Environment:
--   BENCH_GET_WINDOW=W,D  count answers and latencies only for answers that arrive
--                         between W and W+D seconds after the start (warm-up before,
--                         a tail after, so the figures are of the steady state)
--   BENCH_GET_RATE=R      pace the run at R requests/s (wrk2-style: each request goes
--                         out at its slot if a connection is free; never a burst of
--                         more than a second's worth to catch up)
--
-- Latency is matched per request through X-Request-Id, which playerlog echoes, from
-- when wrk builds the request (just before sending it) to its answer. done() prints
-- one JSON line with wrk's totals and the window's figures.

local ffi = require("ffi")
ffi.cdef [[
  typedef struct { long tv_sec; long tv_nsec; } bench_get_timespec;
  int clock_gettime(int clk_id, bench_get_timespec *tp);
]]
local CLOCK_MONOTONIC = 1
local now_ts = ffi.new("bench_get_timespec")

local function now_ms()
  ffi.C.clock_gettime(CLOCK_MONOTONIC, now_ts)
  return tonumber(now_ts.tv_sec) * 1000 + tonumber(now_ts.tv_nsec) / 1e6
end

local players, headers
local counter = 0
local sent = {}
local win_start, win_end

window_ok = 0
window_missing = 0   -- 404: a known player not found would be a bug; counted apart
window_other = 0
window_latency = {}

local rate = tonumber(os.getenv("BENCH_GET_RATE") or "") or 0
local interval_ms = nil
if rate > 0 then
  interval_ms = 1000.0 / rate
end
local next_slot = nil

function init(args)
  players = tonumber(args[1])
  headers = { ["Authorization"] = "Bearer " .. args[2], ["X-Request-Id"] = "" }
  math.randomseed(tonumber(args[3]))
  local window = os.getenv("BENCH_GET_WINDOW") or "0,1e9"
  local skip, length = window:match("([^,]+),([^,]+)")
  win_start = now_ms() + tonumber(skip) * 1000
  win_end = win_start + tonumber(length) * 1000
end

function request()
  counter = counter + 1
  local id = "g" .. counter
  headers["X-Request-Id"] = id
  local path = "/v1/players/ply_" .. math.random(1, players)
  local text = wrk.format("GET", path, headers)
  sent[id] = now_ms()
  return text
end

function response(status, answer_headers, body)
  local now = now_ms()
  local id = answer_headers["x-request-id"] or answer_headers["X-Request-Id"]
  local started = id and sent[id]
  if id then
    sent[id] = nil
  end
  if now < win_start or now >= win_end then
    return
  end
  if status == 200 then
    window_ok = window_ok + 1
  elseif status == 404 then
    window_missing = window_missing + 1
  else
    window_other = window_other + 1
  end
  if started then
    window_latency[#window_latency + 1] = now - started
  end
end

if interval_ms then
  function delay()
    local now = now_ms()
    if not next_slot or next_slot < now - 1000 then
      next_slot = now
    end
    local wait = next_slot - now
    next_slot = next_slot + interval_ms
    if wait <= 0 then
      return 0
    end
    return math.floor(wait + 0.5)
  end
end

local function percentile(sorted, q)
  if #sorted == 0 then
    return -1
  end
  local rank = math.ceil(q / 100 * #sorted)
  if rank < 1 then rank = 1 end
  return sorted[rank]
end

-- wrk runs done() in the main state; with one thread (-t1) the figures are that
-- thread's, read through the thread object.
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function done(summary, latency, requests)
  local ok, missing, other, all = 0, 0, 0, {}
  for _, thread in ipairs(threads) do
    ok = ok + thread:get("window_ok")
    missing = missing + thread:get("window_missing")
    other = other + thread:get("window_other")
    for _, value in ipairs(thread:get("window_latency")) do
      all[#all + 1] = value
    end
  end
  table.sort(all)
  io.write(string.format(
    '{"requests":%d,"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"window":{"ok":%d,"missing":%d,"other":%d,"timed":%d,"latency_ms":{"p50":%.3f,' ..
    '"p90":%.3f,"p99":%.3f,"p999":%.3f,"max":%.3f}}}\n',
    summary.requests, summary.errors.connect, summary.errors.read, summary.errors.write,
    summary.errors.status, summary.errors.timeout,
    ok, missing, other, #all, percentile(all, 50), percentile(all, 90), percentile(all, 99),
    percentile(all, 99.9), all[#all] or -1))
end
