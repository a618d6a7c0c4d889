-- wrk script: send every connection to BENCH_CONNECT (ADDRESS:PORT) while the
-- URL's host name stays in the Host header and, for https, in the TLS SNI.
-- This reaches a container by its bridge address under its site name.
local target = os.getenv("BENCH_CONNECT")
if target == nil then
  error("BENCH_CONNECT is not set: set it to ADDRESS:PORT")
end
local address, port = target:match("^(.+):(%d+)$")
if address == nil then
  error("invalid BENCH_CONNECT " .. target .. ": expected ADDRESS:PORT")
end

-- wrk calls wrk.resolve with the URL's host and port before it starts its
-- threads, and each thread connects to one of wrk.addrs.
function wrk.resolve(host, service)
  wrk.addrs = wrk.lookup(address, port)
end
