-- Prints wrk's totals as one machine-readable line: bytes, seconds,
-- requests, errors (connect+read+write+timeout) and non-2xx responses.
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("WRK bytes=%d seconds=%.6f requests=%d errors=%d status=%d\n",
    summary.bytes, summary.duration / 1e6, summary.requests,
    e.connect + e.read + e.write + e.timeout, e.status))
end
