--- weft.urandom: random bytes from /dev/urandom as lower-case hex, for the
-- ids and tokens of leases, runs, threads and sandboxed commands. Uses only
-- the Lua standard library.
local _M = {}

local open, format = io.open, string.format

-- Random bytes read ahead (one read of /dev/urandom serves many ids: a
-- run, an execution and a lease each take one), and where the next unused
-- one is.
local pool, used = "", 0
local POOL = 512

-- Two hex digits per byte value.
local HEX = {}
for b = 0, 255 do HEX[string.char(b)] = format("%02x", b) end

--- n bytes from /dev/urandom as 2n lower-case hex digits, or nil when
-- /dev/urandom cannot be read (or gives fewer bytes); callers choose their
-- own fallback. Bytes are read ahead in blocks of 512 and never handed out
-- twice.
function _M.hex(n)
  if used + n > #pool then
    local f = open("/dev/urandom", "rb")
    if not f then return nil end
    local bytes = f:read(n > POOL and n or POOL)
    f:close()
    if not bytes or #bytes < n then return nil end
    pool, used = bytes, 0
  end
  local bytes = pool:sub(used + 1, used + n)
  used = used + n
  return (bytes:gsub(".", HEX))
end

return _M
