-- wrk script for bench/serve_load.py: POSTs the JSON bodies of $WRK_BODIES (one per line) in turn,
-- counts non-200 answers, and prints one line "WRKJSON {...}" with the request count, errors and
-- the latency at every 0.1 % quantile (microseconds) so the caller can pool slices.
local bodies = {}
for line in io.lines(os.getenv("WRK_BODIES")) do bodies[#bodies + 1] = line end
local headers = {["Content-Type"] = "application/json"}
local i = 0

request = function()
  i = i + 1
  return wrk.format("POST", nil, headers, bodies[(i % #bodies) + 1])
end

done = function(summary, latency, requests)
  local q = {}
  for k = 1, 1000 do q[k] = latency:percentile(k / 10.0) end
  local e = summary.errors
  io.write(string.format('WRKJSON {"requests": %d, "socket_errors": %d, "status_errors": %d, "duration_us": %d, "quantiles_us": [%s]}\n',
    summary.requests, e.connect + e.read + e.write + e.timeout, e.status, summary.duration, table.concat(q, ",")))
end
