-- wrk script for bench/serve_load.py: POSTs the JSON bodies of $WRK_BODIES (one per line) in turn,
-- counts non-200 answers, and prints one line "WRKJSON {...}" with the request count, errors and
-- the latency at every 0.1 % quantile (microseconds) so the caller can pool slices.
--
-- Open loop when $WRK_RATE is set: request k is due at start + k / rate (at most $WRK_COUNT of
-- them), whichever connection is free takes the next due request and waits until its time. wrk
-- times each request from when it is written, which is its due time as long as a connection is
-- free then; requests written over 1 ms late (every connection busy) are counted and reported, so
-- a run that had to wait is seen (its latencies would otherwise leave out that wait).
local bodies = {}
for line in io.lines(os.getenv("WRK_BODIES")) do bodies[#bodies + 1] = line end
local headers = {["Content-Type"] = "application/json"}
local i = 0

request = function()
  i = i + 1
  return wrk.format("POST", nil, headers, bodies[(i % #bodies) + 1])
end

local rate = tonumber(os.getenv("WRK_RATE") or "")
if rate then
  local ffi = require("ffi")
  ffi.cdef[[ typedef struct { long tv_sec; long tv_nsec; } cr_timespec; int clock_gettime(int clk, cr_timespec *tp); ]]
  local ts = ffi.new("cr_timespec")
  local function now_ms()
    ffi.C.clock_gettime(1, ts)  -- CLOCK_MONOTONIC
    return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
  end
  local interval, count, start, slot = 1000.0 / rate, tonumber(os.getenv("WRK_COUNT")), nil, 0
  late, max_late_ms = 0, 0

  delay = function()
    if start == nil then start = now_ms() + 20 end
    if slot >= count then return 3600000 end  -- schedule done: this connection idles until wrk stops
    local wait = start + slot * interval - now_ms()
    slot = slot + 1
    if wait < -1 then
      late = late + 1
      if -wait > max_late_ms then max_late_ms = -wait end
    end
    return math.max(0, math.floor(wait + 0.5))
  end
end

local threads = {}
setup = function(thread) threads[#threads + 1] = thread end

done = function(summary, latency, requests)
  local q = {}
  for k = 1, 1000 do q[k] = latency:percentile(k / 10.0) end
  local e = summary.errors
  local n_late, worst = 0, 0
  for _, t in ipairs(threads) do
    n_late = n_late + (t:get("late") or 0)
    worst = math.max(worst, t:get("max_late_ms") or 0)
  end
  io.write(string.format('WRKJSON {"requests": %d, "socket_errors": %d, "status_errors": %d, "duration_us": %d, "late": %d, "max_late_ms": %.1f, "quantiles_us": [%s]}\n',
    summary.requests, e.connect + e.read + e.write + e.timeout, e.status, summary.duration, n_late, worst, table.concat(q, ",")))
end
