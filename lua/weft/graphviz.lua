--- weft.graphviz: render a workflow description (`wf:describe()`) as a
-- Mermaid flowchart or a Graphviz dot digraph. Pure string work: no weft
-- runtime needed. Executor ids are always quoted/escaped, so any id is safe.
--
-- Edge labels: conditional → its name or "when"; switch → "case N: name"
-- (or "case N") and "default"; fan-out → "fan-out" or "select" when a
-- selector picks targets; fan-in → "fan-in"; direct edges are unlabelled.
local _M = {}

local concat, format = table.concat, string.format
local ipairs, tostring = ipairs, tostring

-- The edges of one description edge, flattened: {from, to, label, style}
-- with style "plain" | "cond" | "thick".
local function flatten(edge)
  local out = {}
  local kind = edge.kind
  local from, to = edge.from or {}, edge.to or {}
  local function add(f, t, label, style)
    out[#out + 1] = { from = f, to = t, label = label, style = style }
  end
  if kind == "switch" then
    local src = from[1]
    for i, c in ipairs(edge.cases or {}) do
      add(src, c.to, c.name and format("case %d: %s", i, c.name) or format("case %d", i), "cond")
    end
    if edge.default ~= nil then add(src, edge.default, "default", "cond") end
  elseif kind == "conditional" then
    for _, f in ipairs(from) do
      for _, t in ipairs(to) do add(f, t, edge.name or "when", "cond") end
    end
  elseif kind == "fan_out" then
    local label = edge.select and "select" or "fan-out"
    if edge.name then label = label .. ": " .. edge.name end
    for _, f in ipairs(from) do
      for _, t in ipairs(to) do add(f, t, label, "thick") end
    end
  elseif kind == "fan_in" then
    local label = edge.name and ("fan-in: " .. edge.name) or "fan-in"
    for _, f in ipairs(from) do
      for _, t in ipairs(to) do add(f, t, label, "thick") end
    end
  else -- direct (and any kind added later: label it by its kind)
    local label = edge.name
    if kind ~= "direct" and kind ~= nil then
      label = label and (tostring(kind) .. ": " .. label) or tostring(kind)
    end
    for _, f in ipairs(from) do
      for _, t in ipairs(to) do add(f, t, label, "plain") end
    end
  end
  return out
end

-- Node ids in graph order, plus any id only seen on edges (defensive).
local function nodes_of(desc)
  local list, index = {}, {}
  local function see(id, kind)
    if id == nil or index[id] then return end
    list[#list + 1] = { id = id, kind = kind or "worker" }
    index[id] = #list
  end
  for _, e in ipairs(desc.executors or {}) do see(e.id, e.kind) end
  see(desc.start)
  for _, edge in ipairs(desc.edges or {}) do
    for _, f in ipairs(edge.from or {}) do see(f) end
    for _, t in ipairs(edge.to or {}) do see(t) end
    for _, c in ipairs(edge.cases or {}) do see(c.to) end
    see(edge.default)
  end
  return list, index
end

---------------------------------------------------------------------------
-- Mermaid

-- Text inside a quoted Mermaid label: entity codes for what would end or
-- confuse it.
local function mm_text(s)
  s = tostring(s):gsub("[\r\n]+", " ")
  return (s:gsub("[\"#<>]", {
    ['"'] = "#quot;", ["#"] = "#35;", ["<"] = "#lt;", [">"] = "#gt;",
  }))
end

local MM_SHAPE = {
  worker = { "[\"", "\"]" },
  validator = { "{{\"", "\"}}" },
  orchestrator = { "[[\"", "\"]]" },
}

--- Mermaid flowchart text for a workflow description.
function _M.mermaid(desc)
  local nodes, index = nodes_of(desc)
  local out = { "flowchart TD" }
  if desc.name ~= nil then
    out[#out + 1] = "  %% workflow: " .. tostring(desc.name):gsub("[\r\n]+", " ")
  end
  for i, n in ipairs(nodes) do
    local shape, shows_kind = MM_SHAPE[n.kind], true
    if n.id == desc.start then
      shape, shows_kind = { "([\"", "\"])" }, false
    elseif not shape then
      shape, shows_kind = MM_SHAPE.worker, false
    end
    local text = mm_text(n.id)
    -- the start's rounded shape (or an unknown kind) hides the kind: say it
    if not shows_kind and n.kind ~= "worker" then
      text = text .. " (" .. mm_text(n.kind) .. ")"
    end
    out[#out + 1] = format("  n%d%s%s%s", i, shape[1], text, shape[2])
  end
  local ARROW = { plain = "-->", cond = "-.->", thick = "==>" }
  for _, edge in ipairs(desc.edges or {}) do
    for _, e in ipairs(flatten(edge)) do
      local a, b = index[e.from], index[e.to]
      if e.label then
        out[#out + 1] = format("  n%d %s|\"%s\"| n%d", a, ARROW[e.style], mm_text(e.label), b)
      else
        out[#out + 1] = format("  n%d %s n%d", a, ARROW[e.style], b)
      end
    end
  end
  return concat(out, "\n") .. "\n"
end

---------------------------------------------------------------------------
-- Graphviz dot

-- A dot double-quoted string.
local function dq(s)
  s = tostring(s):gsub("[\\\"]", "\\%0"):gsub("\r?\n", "\\n")
  return '"' .. s .. '"'
end

local DOT_SHAPE = { worker = "box", validator = "hexagon", orchestrator = "component" }
local DOT_STYLE = { plain = "", cond = ", style=dashed", thick = ", style=bold" }

--- Graphviz dot text for a workflow description.
function _M.dot(desc)
  local nodes = nodes_of(desc)
  local out = {
    "digraph " .. dq(desc.name or "workflow") .. " {",
    "  rankdir=TB;",
    "  node [shape=box, fontname=\"Helvetica\"];",
    "  edge [fontname=\"Helvetica\", fontsize=10];",
  }
  for _, n in ipairs(nodes) do
    local attrs = { "shape=" .. (DOT_SHAPE[n.kind] or "box") }
    if n.id == desc.start then attrs[#attrs + 1] = "style=\"rounded,bold\"" end
    if n.kind ~= "worker" then attrs[#attrs + 1] = "tooltip=" .. dq(n.kind) end
    out[#out + 1] = format("  %s [%s];", dq(n.id), concat(attrs, ", "))
  end
  for _, edge in ipairs(desc.edges or {}) do
    for _, e in ipairs(flatten(edge)) do
      local attrs = e.label and ("label=" .. dq(e.label)) or ""
      local style = DOT_STYLE[e.style]
      if attrs == "" then style = style:gsub("^, ", "") end
      local all = attrs .. style
      out[#out + 1] = format("  %s -> %s%s;", dq(e.from), dq(e.to),
        all ~= "" and (" [" .. all .. "]") or "")
    end
  end
  out[#out + 1] = "}"
  return concat(out, "\n") .. "\n"
end

return _M
