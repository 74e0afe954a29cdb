-- http_mix.lua - wrk script for run_http.sh: a mix of cart reads and
-- writes over CUSTOMERS customers, each request's customer drawn at random.
--   wrk ... -s http_mix.lua URL -- cart|webdis CUSTOMERS SKUS READ_PERCENT
-- read,  cart:   GET /items/cust-<c>
-- read,  webdis: GET /HGETALL/cart:cust-<c>
-- write, cart:   POST /item/cust-<c>/sku-<k> {"offeredPrice": 19.99, "itemCount": 1}
--                (a new item, or merged into the same one: counts add up)
-- write, webdis: PUT /HSET/cart:cust-<c>/sku-<k> {"p":1999,"c":1,"s":0,"e":null}
--                (the field is set, or overwritten)
-- k is drawn from 0..SKUS-1. At the end it prints one line:
--   RESULT requests duration_us p50_us p99_us connect read write status timeout

local target, customers, skus, read_percent
local cart_headers = {["Content-Type"] = "application/json"}

function init(args)
    target, customers = args[1], tonumber(args[2])
    skus, read_percent = tonumber(args[3]), tonumber(args[4])
    math.randomseed(os.time() * 64 + (thread_number or 0))
end

-- setup runs for each thread before its init: number them, so that each
-- thread draws its own random sequence
local numbered = 0

function setup(thread)
    numbered = numbered + 1
    thread:set("thread_number", numbered)
end

function request()
    local c = math.random(0, customers - 1)
    if math.random(1, 100) <= read_percent then
        if target == "webdis" then
            return wrk.format("GET", string.format("/HGETALL/cart:cust-%d", c))
        end
        return wrk.format("GET", string.format("/items/cust-%d", c))
    end
    local k = math.random(0, skus - 1)
    if target == "webdis" then
        return wrk.format("PUT", string.format("/HSET/cart:cust-%d/sku-%d", c, k), nil,
                          '{"p":1999,"c":1,"s":0,"e":null}')
    end
    return wrk.format("POST", string.format("/item/cust-%d/sku-%d", c, k), cart_headers,
                      '{"offeredPrice": 19.99, "itemCount": 1}')
end

function done(summary, latency, requests)
    local e = summary.errors
    io.write(string.format("RESULT %d %d %d %d %d %d %d %d %d\n", summary.requests,
                           summary.duration, latency:percentile(50),
                           latency:percentile(99), e.connect, e.read, e.write,
                           e.status, e.timeout))
end
