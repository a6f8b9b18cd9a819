-- wrk script of bench/ingest: POST request bodies with ids no request has sent before.
--
--   wrk -t1 -cN -dS -s bench/ingest_lua/post.lua URL -- TEMPLATES PATH TOKEN NONCE
--
-- TEMPLATES  a Lua file written by bench/ingest_bodies.py: realistic bodies cut into
--            fragments around slots (kind 1: ids, kind 2: timestamps)
-- PATH       /v1/events/track or /api/v1/events
-- TOKEN      bearer token
-- NONCE      8 hex digits, new for every wrk run: with the thread number and a per-thread
--            request counter it makes every event_id / unique_id / round_id new
--
-- Environment:
--   BENCH_INGEST_WINDOW=W,D  count answers and latencies only for answers that arrive
--                            between W and W+D seconds after the start (the first W
--                            seconds warm up, and the run goes on past the window, so the
--                            figures are of the steady state, not of the ramp-up or the
--                            requests still in flight when wrk stops)
--   BENCH_INGEST_RATE=R      pace the run at R requests/s in all (wrk2-style: each request
--                            goes out at its scheduled time if a connection is free; a late
--                            one goes at once, but at most a second's worth in a burst)
--   BENCH_INGEST_THREADS=T   wrk's -t (the rate is shared between threads)
--
-- Latency is matched per request: each request carries X-Request-Id, which the servers
-- echo, and is timed from when wrk builds it (just before sending) to its answer.
-- done() prints one JSON line: wrk's totals for the whole run, and the window's figures.

local ffi = require("ffi")
ffi.cdef [[
  typedef struct { long tv_sec; long tv_nsec; } bench_ingest_timespec;
  int clock_gettime(int clk_id, bench_ingest_timespec *tp);
]]
local CLOCK_MONOTONIC = 1
local now_ts = ffi.new("bench_ingest_timespec")

local function now_ms()
  ffi.C.clock_gettime(CLOCK_MONOTONIC, now_ts)
  return tonumber(now_ts.tv_sec) * 1000 + tonumber(now_ts.tv_nsec) / 1e6
end

local function env_number(name, default)
  return tonumber(os.getenv(name) or "") or default
end

-- main state: number the threads (thread_no becomes a global of each thread's state)
local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("thread_no", #threads)
end

-- thread state ---------------------------------------------------------------------------

local bodies, nbodies, path, headers, id_prefix
local counter = 0
local pieces = {}
local sent = {}      -- X-Request-Id -> send time (ms)
local win_start, win_end

-- read by done() through thread:get()
window_ok = 0        -- 2xx answers in the window
window_other = 0     -- other answers in the window
window_latency = {}  -- ms, answers in the window

local rate = env_number("BENCH_INGEST_RATE", 0)
local interval_ms = nil
if rate > 0 then
  interval_ms = 1000.0 * env_number("BENCH_INGEST_THREADS", 1) / rate
end
local next_slot = nil

function init(args)
  local data = dofile(args[1])
  bodies = data.bodies
  nbodies = #bodies
  path = args[2]
  headers = {
    ["Authorization"] = "Bearer " .. args[3],
    ["Content-Type"] = "application/json",
    ["X-Request-Id"] = "",
  }
  id_prefix = string.format("%s-%04x-", args[4], thread_no)
  local window = os.getenv("BENCH_INGEST_WINDOW") or "0,1e9"
  local skip, length = window:match("([^,]+),([^,]+)")
  win_start = now_ms() + tonumber(skip) * 1000
  win_end = win_start + tonumber(length) * 1000
end

local function time_base(n)
  local s = n % 86400
  return string.format("2026-05-18T%02d:%02d:%02d.", math.floor(s / 3600),
    math.floor(s / 60) % 60, s % 60)
end

function request()
  counter = counter + 1
  local body = bodies[(counter % nbodies) + 1]
  local frags, kinds, sufs = body.frags, body.kinds, body.sufs
  local id_base = id_prefix .. string.format("%010x", counter)
  local bases = { id_base, time_base(counter) }
  local n = 1
  pieces[1] = frags[1]
  for i = 1, #kinds do
    pieces[n + 1] = bases[kinds[i]]
    pieces[n + 2] = sufs[i]
    pieces[n + 3] = frags[i + 1]
    n = n + 3
  end
  headers["X-Request-Id"] = id_base
  local text = wrk.format("POST", path, headers, table.concat(pieces, "", 1, n))
  sent[id_base] = now_ms()
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
  if status >= 200 and status < 300 then
    window_ok = window_ok + 1
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
      -- the start, or more than a second behind: don't burst to catch up
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

-- main state again -----------------------------------------------------------------------

local function percentile(sorted, q)
  if #sorted == 0 then
    return -1
  end
  local rank = math.ceil(q / 100 * #sorted)
  if rank < 1 then rank = 1 end
  return sorted[rank]
end

function done(summary, latency, requests)
  local ok, other, all = 0, 0, {}
  for _, thread in ipairs(threads) do
    ok = ok + thread:get("window_ok")
    other = other + thread:get("window_other")
    for _, value in ipairs(thread:get("window_latency")) do
      all[#all + 1] = value
    end
  end
  table.sort(all)
  local mean = 0
  for _, value in ipairs(all) do
    mean = mean + value
  end
  if #all > 0 then
    mean = mean / #all
  end
  io.write(string.format(
    '{"requests":%d,"bytes":%d,"duration_us":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"window":{"ok":%d,"other":%d,"timed":%d,"latency_ms":{"mean":%.3f,"p50":%.3f,' ..
    '"p90":%.3f,"p99":%.3f,"p999":%.3f,"max":%.3f}}}\n',
    summary.requests, summary.bytes, summary.duration,
    summary.errors.connect, summary.errors.read, summary.errors.write,
    summary.errors.status, summary.errors.timeout,
    ok, other, #all, mean, percentile(all, 50), percentile(all, 90), percentile(all, 99),
    percentile(all, 99.9), all[#all] or -1))
end
