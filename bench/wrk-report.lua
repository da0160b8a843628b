-- carpfarm bench: wrk script. Sends one URL (absolute form when it starts with http://, so wrk can
-- load a proxy) and prints one JSON line with the figures `bench/run.py` reads.
--   wrk -t1 -c16 -d3s -s wrk-report.lua http://PROXY:PORT -- http://origin/bench/1k
local target = nil
local request_text = nil

function init(args)
  target = args[1] or wrk.path
  local host = target:match("^http://([^/]+)") or wrk.host
  request_text = wrk.format("GET", target, { ["Host"] = host })
end

function request()
  return request_text
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "bytes": %d, "connect_errors": %d, "read_errors": %d, ' ..
    '"write_errors": %d, "status_errors": %d, "timeouts": %d, "p50_us": %d, "p99_us": %d, "mean_us": %.1f}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.mean))
end
