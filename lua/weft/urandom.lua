--- weft.urandom: random bytes from /dev/urandom as lower-case hex, for the
-- ids and tokens of leases, runs, threads and sandboxed commands. Uses only
-- the Lua standard library.
local _M = {}

local open, format = io.open, string.format

--- n bytes from /dev/urandom as 2n lower-case hex digits, or nil when
-- /dev/urandom cannot be read (or gives fewer bytes); callers choose their
-- own fallback.
function _M.hex(n)
  local f = open("/dev/urandom", "rb")
  if not f then return nil end
  local bytes = f:read(n)
  f:close()
  if not bytes or #bytes ~= n then return nil end
  return (bytes:gsub(".", function(c) return format("%02x", c:byte()) end))
end

return _M
