-- wrk script: POST one awsJson 1.1 ECS request over and over.
-- Configured by the environment (set by bench/ecs_api.sh):
--   BENCH_OP    operation name, e.g. DescribeTaskDefinition
--   BENCH_BODY  JSON request body
-- The Authorization header is unsigned (Signature=0): Berth does not enforce auth by
-- default, and moto_server needs a SigV4-shaped header to route the request to ECS.
local op = os.getenv("BENCH_OP") or error("BENCH_OP is not set")
local body = os.getenv("BENCH_BODY") or error("BENCH_BODY is not set")

wrk.method = "POST"
wrk.body = body
wrk.headers["Content-Type"] = "application/x-amz-json-1.1"
wrk.headers["X-Amz-Target"] = "AmazonEC2ContainerServiceV20141113." .. op
wrk.headers["Authorization"] =
  "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/ecs/aws4_request, SignedHeaders=host, Signature=0"

-- One machine-readable line; latencies in microseconds. non2xx counts responses with
-- status >= 400, sockerr counts connect/read/write errors and timeouts.
function done(summary, latency, requests)
  local secs = summary.duration / 1e6
  local e = summary.errors
  io.write(string.format(
    "RESULT rps=%.1f p50_us=%d p99_us=%d max_us=%d requests=%d bytes=%d non2xx=%d sockerr=%d\n",
    summary.requests / secs, latency:percentile(50), latency:percentile(99), latency.max,
    summary.requests, summary.bytes, e.status, e.connect + e.read + e.write + e.timeout))
end
