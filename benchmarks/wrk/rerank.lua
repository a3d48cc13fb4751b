-- wrk script of the service benchmark (benchmarks/bench_service.py): POST /v1/rerank, cycling through the
-- request bodies of the file named by the BODIES environment variable (one JSON document per line), and
-- one machine-readable line at the end:
--   RESULT <requests> <duration_us> <socket_errors> <non_2xx> <p50_us> <p99_us> <max_us>
-- Latency is wrk's: from writing a request to reading its whole response, in microseconds.
local bodies = {}
for line in io.lines(os.getenv("BODIES")) do
  bodies[#bodies + 1] = line
end
local next_body = 0

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

request = function()
  next_body = next_body % #bodies + 1
  return wrk.format(nil, "/v1/rerank", nil, bodies[next_body])
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %d %d %d %d %d %d %d\n", summary.requests, summary.duration,
    e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(99), latency.max))
end
