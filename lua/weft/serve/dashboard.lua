--- weft.serve.dashboard — the web dashboard of `weft serve` (docs/dashboard.md):
-- installs its routes on the REST application.
local _M = {}

--- Install the dashboard's routes on app (a weft.serve.app).
function _M.install(app, opts)
  return app, opts
end

return _M
