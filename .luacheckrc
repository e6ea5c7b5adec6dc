-- .luacheckrc — the lint_globals ctest test: luacheck reports every read or
-- write of an undeclared global in the project's Lua (lua/, stdlib/,
-- examples/, bench/, spec/). Only the global checks (codes 1xx) are on:
-- style is left to review.
std = "luajit"
only = { "1" }
-- LuaJIT without 5.2 compat has no table.unpack; modules read it as a
-- fallback (`unpack or table.unpack`).
read_globals = { table = { fields = { "unpack" } } }
exclude_files = { "spec/fixtures/cli/syntax.lua" } -- a syntax error on purpose
files["spec"] = { std = "+busted" }
-- The app spec swaps io.stderr to capture what the server logs.
files["spec/unit/serve_app_spec.lua"] = { globals = { io = { fields = { "stderr" } } } }
