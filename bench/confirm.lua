-- wrk script for bench/bench_payments.py: POSTs CONFIRM callbacks to /v1/payments/confirm, one
-- body per line of BENCH_BODIES, in order, starting again at the first once all were sent.
--
-- Environment: BENCH_BODIES  file with one JSON body per line
--              BENCH_LIMIT   answers after which the (single) thread stops (0 = run for -d)
-- done() prints one line: BENCH {json}; "accepted" counts answers 200 whose MaLoi is "00".

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  bodies = {}
  for line in io.lines(os.getenv("BENCH_BODIES")) do
    if #line > 0 then table.insert(bodies, line) end
  end
  limit = tonumber(os.getenv("BENCH_LIMIT") or "0")
  host = wrk.host .. ":" .. wrk.port
  sent = 0
  answered = 0
  accepted = 0
end

function request()
  local body = bodies[(sent % #bodies) + 1]
  sent = sent + 1
  return "POST /v1/payments/confirm HTTP/1.1\r\nHost: " .. host
    .. "\r\nContent-Type: application/json\r\nContent-Length: " .. #body .. "\r\n\r\n" .. body
end

function response(status, hdrs, body)
  answered = answered + 1
  if status == 200 and string.find(body, '"MaLoi":"00"', 1, true) then accepted = accepted + 1 end
  if limit > 0 and answered >= limit then wrk.thread:stop() end
end

function done(summary, latency, requests)
  local acc = 0
  for _, t in ipairs(threads) do acc = acc + t:get("accepted") end
  local e = summary.errors
  io.write(string.format(
    'BENCH {"requests": %d, "accepted": %d, "duration_us": %d, "status_errors": %d, "timeouts": %d, '
    .. '"connect_errors": %d, "read_errors": %d, "write_errors": %d, "p50_us": %d, "p99_us": %d}\n',
    summary.requests, acc, summary.duration, e.status, e.timeout, e.connect,
    e.read, e.write, latency:percentile(50), latency:percentile(99)))
end
