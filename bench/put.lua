-- wrk script for bench/bench_gateway.py: every request PUTs a dossier under a MaHoSo never used
-- before (unit, run tag, thread number, counter), with the same body as the bench's template.
--
-- Environment: BENCH_BODY   file holding the JSON body, "@MAHOSO@" where the code goes
--              BENCH_KEY    agency API key (X-API-Key)
--              BENCH_UNIT   the agency's unit: first dash segment of every MaHoSo
--              BENCH_RUN    a tag that keeps codes distinct between runs on one store
--              BENCH_LIMIT  answers per thread after which the thread stops (0 = run for -d)
-- done() prints one line: BENCH {json}.

local threads = {}
local next_tid = 0

function setup(thread)
  thread:set("tid", next_tid)
  next_tid = next_tid + 1
  table.insert(threads, thread)
end

function init(args)
  local f = assert(io.open(os.getenv("BENCH_BODY"), "rb"))
  template = f:read("*a")
  f:close()
  unit = os.getenv("BENCH_UNIT")
  run = os.getenv("BENCH_RUN")
  limit = tonumber(os.getenv("BENCH_LIMIT") or "0")
  key = os.getenv("BENCH_KEY")
  host = wrk.host .. ":" .. wrk.port
  local i, j = string.find(template, "@MAHOSO@", 1, true)
  head = string.sub(template, 1, i - 1)
  tail = string.sub(template, j + 1)
  halves = #head + #tail
  sent = 0
  answered = 0
  accepted = 0
end

-- The request is concatenated from the template's two halves, as wrk.format would lay it out:
-- wrk.format and a gsub over the 2 KB body per request made wrk itself cost ~44 us of CPU per
-- request, ~20 us this way, on the CPUs the measured processes share.
function request()
  sent = sent + 1
  local code = string.format("%s-%s%d-%07d", unit, run, tid, sent)
  return "PUT /v1/dossiers/" .. code .. " HTTP/1.1\r\nHost: " .. host
    .. "\r\nContent-Type: application/json\r\nX-API-Key: " .. key
    .. "\r\nContent-Length: " .. (halves + #code) .. "\r\n\r\n" .. head .. code .. tail
end

function response(status, hdrs, body)
  answered = answered + 1
  if status == 202 then accepted = accepted + 1 end
  if limit > 0 and answered >= limit then wrk.thread:stop() end
end

function done(summary, latency, requests)
  local acc = 0
  for _, t in ipairs(threads) do acc = acc + t:get("accepted") end
  local e = summary.errors
  io.write(string.format(
    'BENCH {"requests": %d, "accepted": %d, "duration_us": %d, "status_errors": %d, "timeouts": %d, '
    .. '"connect_errors": %d, "read_errors": %d, "write_errors": %d, "p50_us": %d, "p99_us": %d}\n',
    summary.requests, acc, summary.duration, e.status, e.timeout, e.connect, e.read, e.write,
    latency:percentile(50), latency:percentile(99)))
end
