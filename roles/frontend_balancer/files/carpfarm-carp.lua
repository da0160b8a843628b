-- carpfarm-carp.lua: Squid's CARP parent choice, per request, inside HAProxy (2.6 with Lua 5.3,
-- 3.0 with Lua 5.4).
--
-- Load it, then the peers file carpfarm renders (carpfarm.carp.haproxy_lua), into every thread:
--
--     global
--         lua-load-per-thread /etc/haproxy/carpfarm-carp.lua
--         lua-load-per-thread /etc/haproxy/carpfarm-carp-peers.lua
--
-- The peers file calls carpfarm_carp.register{...}, which registers a sample fetch (lua.<fetch>)
-- that names the server Squid's CARP picks for the request, or fails when Squid would pick none
-- (a URL Squid refuses, or no usable peer). Call it in the peers' backend, which it reads the
-- servers' state from:
--
--     backend carp
--         balance first
--         http-request set-var(txn.carpfarm_carp) lua.carpfarm_carp
--         use-server %[var(txn.carpfarm_carp)] if { var(txn.carpfarm_carp) -m found }
--
-- What Squid 5.7 and 6.13 do, which this file repeats (src/carp.cc, src/anyp/Uri.cc,
-- src/HttpRequest.cc; carpfarm's model, proven against both, is src/carpfarm/carp/):
--
-- * the key is the request's effective URI as Squid parses and prints it (scheme and host in lower
--   case, trailing dots gone, the scheme's default port dropped, an IP address re-printed, an empty
--   path made "/", userinfo kept for ftp only), or "host:port" for CONNECT, or the carp-key parts;
-- * the URL hash is not reset between peers: it accumulates over each peer's key in turn
--   (h += rotl(h, 19) + c, unsigned 32 bits, c a signed char), is mixed with the peer's hash,
--   and multiplied, in IEEE doubles, by the peer's load multiplier;
-- * the highest score wins among the peers that may take the request; ties go to the first.
--
-- Everything Squid computes at configure time (the peers' order, hashes and load multipliers,
-- the 1/1000 load-factor floor included) comes precomputed in the peers file, the multipliers as
-- exact hexadecimal floats. Per request this file does the URL's canonical form and, per peer,
-- the hash walk over the key: O(peers x key length).
--
-- A peer may take the request when its server is up and not draining: down (by its health check),
-- maintenance, drain and weight-0 servers still feed the hash, as a dead or denied Squid peer
-- does, but cannot win. Up is HAProxy's own srv_is_up fetch (maintenance, or health-checked and
-- down, is not up), draining is Server:is_draining() (weight 0 or drain); both are cheap, unlike
-- Server:get_stats(), which costs more than all the rest of the work at 4 peers. A NOLB server
-- (up, stopping) counts as up. Only the leading candidate's state is read, so a request usually
-- costs one check. Servers must not be deleted at run time (del server): the Server objects are
-- looked up once, at start.

local MASK = 0xFFFFFFFF
local MAX_URL = 8192 -- Squid refuses a URL of MAX_URL bytes or more (AnyP::Uri::parse)

-- src/anyp/ProtocolType.h, lower case, with their default ports (UriScheme::defaultPort()).
local SCHEME_PORTS = {
    http = 80, ftp = 21, https = 443, coap = 5683, coaps = 5683, gopher = 70, wais = 210,
    cache_object = 3128, icp = 0, htcp = 0, urn = 0, whois = 43, icy = 0, tls = 0, ssl = 0,
    authority_form = 0,
}
-- The schemes a GET reaches peer selection with; for the others Squid answers itself.
local FORWARDED = { http = true, https = true, ftp = true, wais = true, whois = true }
local KEY_PARTS = { scheme = true, host = true, port = true, path = true, params = true }
local SPACE = "[ \t\n\v\f\r]" -- C isspace() in the C locale, as HAProxy runs
local USERINFO_KEEP = "[^%w:%-%._~!$&'()*+,;=]" -- Uri::Encode(): what is not userinfo

-- C atoi() (glibc: (int) strtol()): blanks, a sign, digits; as the unsigned value the port check
-- sees (a negative int is above 65535 either way). ``strict``: sscanf("%d"), which leaves the port
-- alone (nil here) when no digit follows.
local function c_atoi(text, strict)
    local sign, digits = text:match("^[ \t\n\v\f\r]*([+-]?)(%d*)")
    if digits == "" then
        if strict then return nil end
        return 0
    end
    local n, overflow = 0, false
    for i = 1, #digits do
        local d = digits:byte(i) - 48
        if n > (math.maxinteger - d) // 10 then overflow = true break end
        n = n * 10 + d
    end
    if overflow then -- strtol clamps to LONG_MAX or LONG_MIN; their low 32 bits
        return sign == "-" and 0 or MASK
    end
    if sign == "-" then n = -n end
    return n & MASK
end

-- lib/rfc1738.c rfc1738_unescape(): "%%" is "%", "%xy" a byte (not %00), anything else stays.
local function rfc1738_unescape(text)
    if not text:find("%", 1, true) then return text end
    local out, j, len = {}, 1, #text
    while j <= len do
        local c = text:sub(j, j)
        if c == "%" and text:sub(j + 1, j + 1) == "%" then
            out[#out + 1] = "%"
            j = j + 2
        else
            local pair = text:sub(j + 1, j + 2)
            local value = c == "%" and pair:match("^%x%x$") and tonumber(pair, 16)
            if value and value ~= 0 then
                out[#out + 1] = string.char(value)
                j = j + 3
            else
                out[#out + 1] = c
                j = j + 1
            end
        end
    end
    return table.concat(out)
end

local function encode_userinfo(text)
    return (text:gsub(USERINFO_KEEP, function(c) return string.format("%%%02X", c:byte()) end))
end

-- glibc inet_aton() (inet_aton_exact): 1-4 parts, each decimal, 0-octal or 0x-hex; the last part
-- fills the bytes that are left. Returns the address as a 32-bit integer, or nil.
local function inet_aton(text)
    local values = {}
    for part in (text .. "."):gmatch("([^.]*)%.") do
        local digits, base, allowed
        if part:sub(1, 2) == "0x" or part:sub(1, 2) == "0X" then
            digits, base, allowed = part:sub(3), 16, "^%x+$"
        elseif part:sub(1, 1) == "0" then
            digits, base, allowed = part:sub(2), 8, "^[0-7]+$"
            if digits == "" then digits = "0" end
        else
            digits, base, allowed = part, 10, "^%d+$"
        end
        if not digits:match(allowed) then return nil end
        local v = 0
        for i = 1, #digits do
            v = v * base + tonumber(digits:sub(i, i), 16)
            if v > MASK then v = MASK + 1 end -- too big for any part: keep it too big
        end
        values[#values + 1] = v
        if #values > 4 then return nil end
    end
    local count = #values
    local last = values[count]
    if last >= 1 << (8 * (5 - count)) then return nil end
    local number = last
    for n = 1, count - 1 do
        if values[n] > 0xFF then return nil end
        number = number | (values[n] << (32 - 8 * n))
    end
    return number
end

-- An IPv6 address as Python's ipaddress (and glibc's inet_pton) read it: eight 16-bit words, or nil.
local function inet6_words(address)
    local parts = {}
    for part in (address .. ":"):gmatch("([^:]*):") do parts[#parts + 1] = part end
    if #parts < 3 then return nil end
    local last = parts[#parts]
    if last:find(".", 1, true) then
        local octets = {}
        for octet in (last .. "."):gmatch("([^.]*)%.") do
            if not octet:match("^%d%d?%d?$") or (octet ~= "0" and octet:sub(1, 1) == "0") then return nil end
            local v = tonumber(octet)
            if v > 255 then return nil end
            octets[#octets + 1] = v
        end
        if #octets ~= 4 then return nil end
        parts[#parts] = string.format("%x", octets[1] << 8 | octets[2])
        parts[#parts + 1] = string.format("%x", octets[3] << 8 | octets[4])
    end
    local count = #parts
    if count > 9 then return nil end
    local skip
    for i = 2, count - 1 do
        if parts[i] == "" then
            if skip then return nil end
            skip = i
        end
    end
    local hi, lo
    if skip then
        hi, lo = skip - 1, count - skip
        if parts[1] == "" then
            hi = hi - 1
            if hi ~= 0 then return nil end
        end
        if parts[count] == "" then
            lo = lo - 1
            if lo ~= 0 then return nil end
        end
        if 8 - (hi + lo) < 1 then return nil end
    else
        if count ~= 8 or parts[1] == "" or parts[count] == "" then return nil end
        hi, lo = count, 0
    end
    local words = {}
    local function hextet(text)
        if not text:match("^%x%x?%x?%x?$") then return nil end
        return tonumber(text, 16)
    end
    for i = 1, hi do
        words[i] = hextet(parts[i])
        if not words[i] then return nil end
    end
    for i = hi + 1, 8 - lo do words[i] = 0 end
    for i = 1, lo do
        local w = hextet(parts[count - lo + i])
        if not w then return nil end
        words[8 - lo + i] = w
    end
    return words
end

-- inet_pton(AF_INET6), plus a numeric %scope that getaddrinfo accepts and inet_ntop drops.
local function inet6(text)
    local address, scope = text:match("^([^%%]*)%%(.*)$")
    if address then
        local digits = scope:match("^0*(%d*)$")
        if scope == "" or not digits or #digits > 10 or (digits ~= "" and tonumber(digits) > MASK) then return nil end
    else
        address = text
    end
    if not address:find(":", 1, true) or address:find("[^0-9a-f:.]") then return nil end
    return inet6_words(address)
end

-- glibc inet_ntop(AF_INET6): the longest run (>= 2) of zero words is "::", the first of equal
-- runs; an IPv4-compatible or -mapped address ends in a dotted quad.
local function inet_ntop6(words)
    local best, best_len, run, run_len = -1, 0, -1, 0
    for n = 1, 8 do
        if words[n] == 0 then
            if run < 0 then run, run_len = n, 1 else run_len = run_len + 1 end
            if run_len > best_len then best, best_len = run, run_len end
        else
            run, run_len = -1, 0
        end
    end
    if best_len < 2 then best, best_len = -1, 0 end
    local out = {}
    local n = 1
    while n <= 8 do
        if n == best then
            out[#out + 1] = "::"
            n = n + best_len
        else
            if n > 1 and out[#out] ~= "::" then out[#out + 1] = ":" end
            if n == 7 and best == 1 and (best_len == 6 or (best_len == 5 and words[6] == 0xFFFF)) then
                out[#out + 1] = string.format("%d.%d.%d.%d", words[7] >> 8, words[7] & 0xFF, words[8] >> 8, words[8] & 0xFF)
                break
            end
            out[#out + 1] = string.format("%x", words[n])
            n = n + 1
        end
    end
    return table.concat(out)
end

local function dotted(number)
    return string.format("%d.%d.%d.%d", number >> 24, (number >> 16) & 0xFF, (number >> 8) & 0xFF, number & 0xFF)
end

-- Uri::host(): an IP address is re-printed (IPv4 and IPv4-mapped IPv6 as a dotted quad, IPv6 as
-- [inet_ntop]); the "any" address and everything else stay as written.
local function host_form(host)
    if host == "" or not host:find("^[%x:.%%%[%]xX]+$") then return host end -- no address can hide here
    local v4 = inet_aton(host)
    if v4 then
        if v4 == 0 then return host end
        return dotted(v4)
    end
    local words = inet6(host)
    if not words then return host end
    local zero = true
    for n = 1, 8 do if words[n] ~= 0 then zero = false break end end
    if zero then return host end
    if words[1] == 0 and words[2] == 0 and words[3] == 0 and words[4] == 0 and words[5] == 0 and words[6] == 0xFFFF then
        return dotted(words[7] << 16 | words[8])
    end
    return "[" .. inet_ntop6(words) .. "]"
end

-- The host in lower case without trailing dots; nil for none, a leading or a doubled dot.
local function checked_host(found)
    if found == "" then return nil end
    local host = found:lower():gsub("%.+$", "")
    if host:find("..", 1, true) or host:sub(1, 1) == "." then return nil end
    return host
end

-- AnyP::Uri::parse() for an absolute URL: scheme, host, port, path, userinfo; nil where Squid refuses.
local function parse_url(url)
    local colon = url:find(":", 1, true)
    if not colon or colon == 1 then return nil end
    local raw_scheme = url:sub(1, colon - 1)
    if #raw_scheme > 16 or not raw_scheme:find("^[A-Za-z][A-Za-z0-9+.%-_]*$") then return nil end
    local scheme = raw_scheme:lower()
    if not FORWARDED[scheme] then return nil end
    if url:sub(colon + 1, colon + 2) ~= "//" then return nil end
    local rest = url:sub(colon + 3)
    -- the authority runs to the first '/', '?', '#', NUL or white space
    local stop = rest:find("[/?#\0 \t\n\v\f\r]") or #rest + 1
    local authority, path = rest:sub(1, stop - 1), rest:sub(stop)
    local cut = path:find("[\r\n\0]")
    if cut then path = path:sub(1, cut - 1) end
    if path:sub(1, 1) ~= "/" then path = "/" .. path end
    if path:find(SPACE) then path = path:gsub(SPACE, "") end
    local userinfo, host_port = "", authority
    local login, after = authority:match("^(.*)@(.*)$")
    if login then userinfo, host_port = rfc1738_unescape(login), after end
    local found, port_text
    if host_port:sub(1, 1) == "[" then
        local close = host_port:find("]", 1, true)
        local tail
        if close then
            found, tail = host_port:sub(2, close - 1), host_port:sub(close)
        else
            found, tail = host_port:sub(2), ""
        end
        local pc = tail:find(":", 1, true)
        if pc then port_text = tail:sub(pc + 1) end
    else
        local first = host_port:find(":", 1, true)
        if first and not host_port:find(":", first + 1, true) then
            found, port_text = host_port:sub(1, first - 1), host_port:sub(first + 1)
        else
            found = host_port
        end
    end
    local host = checked_host(found)
    if not host then return nil end
    local port = port_text and c_atoi(port_text) or SCHEME_PORTS[scheme]
    if port < 1 or port > 65535 then return nil end
    return scheme, host_form(host), port, path, userinfo
end

-- AnyP::Uri::parse() for CONNECT's authority-form target: sscanf("[%[^]]]:%d"), then
-- sscanf("%[^:]:%d"); the port is 443 unless digits follow the colon.
local function parse_connect(target)
    local found, after
    if target:sub(1, 1) == "[" and target:sub(2, 2) ~= "]" and #target > 1 then
        found = target:match("^%[([^%]]+)")
        after = target:sub(#found + 2)
        after = after:sub(1, 2) == "]:" and after:sub(3) or nil
    else
        found = target:match("^([^:]+)")
        if not found then return nil end
        after = target:sub(#found + 1)
        after = after:sub(1, 1) == ":" and after:sub(2) or nil
    end
    local port = after and c_atoi(after, true) or 443
    found = found:gsub(SPACE, "")
    local host = found:lower():gsub("%.+$", "")
    if host:find("..", 1, true) or host:sub(1, 1) == "." then return nil end
    if port < 1 or port > 65535 then return nil end
    return "", host_form(host), port, "", ""
end

-- The canonical request: { scheme, host, port, path, userinfo, connect }, or nil where Squid refuses.
local function canonical(method, target)
    if #target >= MAX_URL then return nil end
    local scheme, host, port, path, userinfo
    if method == "CONNECT" then
        scheme, host, port, path, userinfo = parse_connect(target)
    else
        scheme, host, port, path, userinfo = parse_url(target)
    end
    if not scheme then return nil end
    return { scheme = scheme, host = host, port = port, path = path, userinfo = userinfo, connect = method == "CONNECT" }
end

-- HttpRequest::effectiveRequestUri(): "host:port" for CONNECT, else Uri::absolute().
local function effective_uri(u)
    if u.connect then return u.host .. ":" .. u.port end
    local authority = u.host
    if u.port ~= SCHEME_PORTS[u.scheme] then authority = authority .. ":" .. u.port end
    local userinfo = ""
    if u.userinfo ~= "" and u.scheme == "ftp" then userinfo = encode_userinfo(u.userinfo) .. "@" end
    return u.scheme .. "://" .. userinfo .. authority .. u.path
end

-- The key CARP hashes for a peer: the carp-key parts in Squid's order, or the effective URI.
local function key_for(u, parts)
    if parts then
        local key = {}
        if parts.scheme and u.scheme ~= "" then key[#key + 1] = u.scheme .. "://" end
        if parts.host then key[#key + 1] = u.host end
        if parts.port then key[#key + 1] = ":" .. u.port end
        local q = u.path:find("?", 1, true)
        if parts.path then key[#key + 1] = q and u.path:sub(1, q - 1) or u.path end
        if parts.params and q then key[#key + 1] = u.path:sub(q) end
        local text = table.concat(key)
        if text ~= "" then return text end
    end
    return effective_uri(u)
end

-- The values C adds for the key's bytes: a signed char sign-extends bytes from 0x80.
local function key_values(key, signed_char)
    local values = { key:byte(1, -1) }
    if signed_char and key:find("[\128-\255]") then
        for i = 1, #values do
            if values[i] >= 0x80 then values[i] = values[i] - 0x100 end
        end
    end
    return values
end

-- A server may take a request when it is up and not draining (see the header). is_draining()
-- gives an integer in HAProxy 2.6, a boolean in 3.0 (nil for a deleted server); srv_is_up gives
-- 0 or 1 in 2.6. srv_is_up is given the bare server name, which it looks up in the backend the
-- fetch runs in: HAProxy (2.6 and 3.0) cuts a "backend/server" argument in place, with a NUL
-- written into the Lua string itself, which would spoil the name for every later request.
local function usable(txn, server, name)
    local draining = server:is_draining()
    if draining ~= 0 and draining ~= false then return false end
    local up = txn.f:srv_is_up(name)
    return up == true or up == 1
end

local function checked_spec(spec)
    assert(type(spec.fetch) == "string" and spec.fetch:match("^[%w_.]+$"), "carpfarm_carp: fetch must be a name")
    assert(type(spec.backend) == "string", "carpfarm_carp: backend must name the backend of the peers' servers")
    assert(type(spec.peers) == "table" and #spec.peers > 0, "carpfarm_carp: peers must list at least one peer")
    for k, p in ipairs(spec.peers) do
        local where = "carpfarm_carp: peer " .. k .. " (" .. tostring(p.name) .. "): "
        assert(type(p.server) == "string", where .. "server must name its HAProxy server")
        assert(math.type(p.hash) == "integer" and p.hash >= 0 and p.hash <= MASK, where .. "hash must be a 32-bit integer")
        assert(type(p.multiplier) == "number", where .. "multiplier must be a number")
        if p.key then
            local parts = {}
            for part in p.key:gmatch("[^,]+") do
                assert(KEY_PARTS[part], where .. "unknown carp-key part " .. part)
                parts[part] = true
            end
            p.parts = parts
        end
    end
    return spec
end

carpfarm_carp = {}

-- Register lua.<spec.fetch> for one backend's CARP peers, in Squid's order (see the header).
function carpfarm_carp.register(spec)
    spec = checked_spec(spec)
    local peers, count = spec.peers, #spec.peers
    local signed_char = spec.signed_char ~= false
    local servers = {}

    core.register_init(function()
        local backend = core.backends[spec.backend]
        if not backend then error("carpfarm_carp: no backend " .. spec.backend) end
        for k, p in ipairs(peers) do
            servers[k] = backend.servers[p.server]
            if not servers[k] then error("carpfarm_carp: backend " .. spec.backend .. " has no server " .. p.server) end
        end
    end)

    -- Peers that share a carp-key share its values, computed once per request.
    local same_key = true
    for k = 2, count do
        if peers[k].key ~= peers[1].key then same_key = false end
    end

    local scores = {}
    core.register_fetches(spec.fetch, function(txn)
        local u = canonical(txn.sf:method(), txn.sf:url())
        if not u then return nil end
        local values, by_key
        if same_key then
            values = key_values(key_for(u, peers[1].parts), signed_char)
        else
            by_key = {}
        end
        local h = 0
        for k = 1, count do
            local p = peers[k]
            local v = values
            if by_key then
                local name = p.key or ""
                v = by_key[name]
                if not v then
                    v = key_values(key_for(u, p.parts), signed_char)
                    by_key[name] = v
                end
            end
            -- h += rotl(h, 19) + c, that is h * (1 + 2^19) + (h >> 13) + c, modulo 2^32 (the
            -- literal, not MASK: a constant costs the VM less than an upvalue, in the hottest loop)
            for i = 1, #v do
                h = (h * 524289 + (h >> 13) + v[i]) & 0xFFFFFFFF
            end
            -- combined = rotl((h ^ peer) * (1 + 0x62531965), 21), modulo 2^32; the product is below 2^63
            local x = ((h ~ p.hash) * 0x62531966) & 0xFFFFFFFF
            x = ((x << 21) | (x >> 11)) & 0xFFFFFFFF
            scores[k] = x * p.multiplier -- an IEEE double product, as Squid's
        end
        -- The first highest score among the peers that may win; only the leader's state is read.
        local excluded
        while true do
            local best, high = nil, 0.0
            for k = 1, count do
                local s = scores[k]
                if s > high and not (excluded and excluded[k]) then best, high = k, s end
            end
            if not best then return nil end
            if usable(txn, servers[best], peers[best].server) then return peers[best].server end
            excluded = excluded or {}
            excluded[best] = true
        end
    end)
end
