--- weft.graphviz: render a workflow description (`wf:describe()`) as a
-- Mermaid flowchart, a Graphviz dot digraph, or an SVG drawing laid out by
-- Graphviz's dot engine (`svg`, through weft.core.gv: libgvc). mermaid and
-- dot are pure string work (no weft runtime needed). Executor ids are always
-- quoted/escaped, so any id is safe.
--
-- Edge labels: conditional → its name or "when"; switch → "case N: name"
-- (or "case N") and "default"; fan-out → "fan-out" or "select" when a
-- selector picks targets; fan-in → "fan-in"; direct edges are unlabelled.
local _M = {}

local concat, format = table.concat, string.format
local ipairs, tostring, tonumber, type = ipairs, tostring, tonumber, type

-- The edges of one description edge, flattened: {from, to, label, style,
-- kind} with style "plain" | "cond" | "thick" and kind the description's
-- kind (nil for an edge that has none).
local function flatten(edge)
  local out = {}
  local kind = edge.kind
  local from, to = edge.from or {}, edge.to or {}
  local function add(f, t, label, style)
    out[#out + 1] = { from = f, to = t, label = label, style = style, kind = kind }
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

local U_FFFD = "\239\191\189"
-- C0 controls that XML 1.0 forbids (all but tab, newline, carriage return).
local XML_FORBIDDEN = "[%z\1-\8\11\12\14-\31]"

-- Bytes that are not UTF-8 become U+FFFD (weft.core.json's fix_utf8).
local function fix_utf8(s)
  return require("weft.core.json").fix_utf8(s)
end

-- A dot label that Graphviz shows as written: valid UTF-8, "&" as "&amp;"
-- (Graphviz decodes entities in labels), no control characters but line
-- breaks (a lone CR and the ones XML forbids become U+FFFD).
local function gv_label(s)
  s = fix_utf8(tostring(s)):gsub("\r\n", "\n"):gsub("\r", U_FFFD)
  s = s:gsub(XML_FORBIDDEN, U_FFFD):gsub("&", "&amp;")
  return dq(s)
end

--- The SVG element id of executor id's node in `svg` output: "wfn_" then
-- the id's bytes, each byte outside [0-9A-Za-z] written as "_" and two
-- lowercase hex digits ("fetch-page" → "wfn_fetch_2dpage").
function _M.node_id(id)
  return "wfn_" .. (tostring(id):gsub("[^0-9A-Za-z]", function(c)
    return format("_%02x", c:byte())
  end))
end

-- Above this many executors or drawn edges, svg lays the graph out for
-- speed (dot_text).
local LARGE_NODES, LARGE_EDGES = 100, 200

local DOT_SHAPE = { worker = "box", validator = "hexagon", orchestrator = "component" }
local DOT_STYLE = { cond = "style=dashed", thick = "style=bold" }

-- The flattened edges that close a cycle: back edges of a depth-first walk
-- from the start, then from the other nodes in order (a set of edges).
-- Marked constraint=false for dot, the graph it ranks has no cycle left to
-- break: Graphviz 2.43 leaks the edges it reverses to break one (acyclic()),
-- and a loop drawn against the flow reads as a loop.
local function back_edges(nodes, flat, start)
  local out_of, state, back = {}, {}, {}
  for _, e in ipairs(flat) do
    local list = out_of[e.from]
    if not list then list = {}; out_of[e.from] = list end
    list[#list + 1] = e
  end
  local function walk(root)
    if root == nil or state[root] then return end
    -- stack of {node, next edge index}; state: 1 on the stack, 2 done
    local stack = { { root, 1 } }
    state[root] = 1
    while #stack > 0 do
      local top = stack[#stack]
      local e = (out_of[top[1]] or {})[top[2]]
      if e == nil then
        state[top[1]] = 2
        stack[#stack] = nil
      else
        top[2] = top[2] + 1
        if state[e.to] == 1 then
          back[e] = true
        elseif not state[e.to] then
          state[e.to] = 1
          stack[#stack + 1] = { e.to, 1 }
        end
      end
    end
  end
  walk(start)
  for _, n in ipairs(nodes) do walk(n.id) end
  return back
end

-- dot text of desc; with svg, also its nodes and flattened edges in order.
-- For svg, nodes are named by node_id and labelled with the executor id,
-- edges get ids "wfe_<n>" (n: position among the flattened edges), so that
-- the SVG can be annotated afterwards; no tooltips (SVG makes them links).
local function dot_text(desc, svg)
  local nodes = nodes_of(desc)
  local flat = {}
  for _, edge in ipairs(desc.edges or {}) do
    for _, e in ipairs(flatten(edge)) do flat[#flat + 1] = e end
  end
  local name = svg and _M.node_id or dq
  local out = {
    "digraph " .. (svg and "wf" or dq(desc.name or "workflow")) .. " {",
    "  rankdir=TB;",
    "  node [shape=box, fontname=\"Helvetica\"];",
    "  edge [fontname=\"Helvetica\", fontsize=10];",
  }
  if svg then out[#out + 1] = "  bgcolor=transparent;" end
  -- Large graphs: straight edges and one network-simplex pass for the
  -- coordinates; dot's curved routing and full positioning take 1-2 s at
  -- 200 nodes and 400 edges, this ~0.1 s (docs/api.md).
  if svg and (#nodes > LARGE_NODES or #flat > LARGE_EDGES) then out[#out + 1] = "  splines=line; nslimit=1;" end
  for _, n in ipairs(nodes) do
    local attrs = { "shape=" .. (DOT_SHAPE[n.kind] or "box") }
    if n.id == desc.start then attrs[#attrs + 1] = "style=\"rounded,bold\"" end
    if svg then
      attrs[#attrs + 1] = "id=" .. name(n.id)
      attrs[#attrs + 1] = "label=" .. gv_label(n.id)
    elseif n.kind ~= "worker" then
      attrs[#attrs + 1] = "tooltip=" .. dq(n.kind)
    end
    out[#out + 1] = format("  %s [%s];", name(n.id), concat(attrs, ", "))
  end
  local back = svg and back_edges(nodes, flat, desc.start) or {}
  for i, e in ipairs(flat) do
    local attrs = {}
    if e.label then attrs[#attrs + 1] = "label=" .. (svg and gv_label or dq)(e.label) end
    attrs[#attrs + 1] = DOT_STYLE[e.style]
    if svg then attrs[#attrs + 1] = "id=wfe_" .. i end
    if back[e] then attrs[#attrs + 1] = "constraint=false" end
    out[#out + 1] = format("  %s -> %s%s;", name(e.from), name(e.to),
      #attrs > 0 and (" [" .. concat(attrs, ", ") .. "]") or "")
  end
  out[#out + 1] = "}"
  return concat(out, "\n") .. "\n", nodes, flat
end

--- Graphviz dot text for a workflow description.
function _M.dot(desc)
  return (dot_text(desc, false))
end

---------------------------------------------------------------------------
-- SVG (Graphviz dot layout)

local XML_REF = {
  ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;", ['"'] = "&quot;", ["'"] = "&#39;",
  ["\n"] = "&#10;", ["\r"] = "&#13;", ["\t"] = "&#9;",
}

-- s as XML text or attribute value: valid UTF-8, markup and whitespace
-- characters as references (an attribute keeps its newlines), the control
-- characters XML forbids as U+FFFD.
local function xml(s)
  s = fix_utf8(tostring(s)):gsub(XML_FORBIDDEN, U_FFFD)
  return (s:gsub("[&<>\"'\n\r\t]", XML_REF))
end

local NODE_CLASS = { worker = "worker", validator = "validator", orchestrator = "orchestrator" }
local EDGE_CLASS = {
  direct = "direct", conditional = "cond", switch = "switch", fan_out = "fan-out", fan_in = "fan-in",
}

--- SVG drawing of a workflow description, laid out by Graphviz (dot),
-- ready to inline in an HTML page: no XML prolog, DOCTYPE or comments; no
-- width/height (it scales to its container; viewBox kept); <svg
-- class="weft-graph">. Each executor is a <g id="<node_id(id)>"
-- class="node <worker|validator|orchestrator|other>[ start]"
-- data-executor="<id>"> holding <title><id></title>; each edge a <g
-- id="wfe_<n>" class="edge <direct|cond|switch|fan-out|fan-in|other>"
-- data-kind="<kind>" data-from="<id>" data-to="<id>">. Every id, name and
-- label is escaped. Returns svg, or nil and Graphviz's error (syntax,
-- limits: weft.core.gv MAX_NODES/MAX_EDGES/MAX_SOURCE). Synchronous: the
-- layout blocks the caller's loop (~1-2 ms for 20 executors, more for
-- large graphs: docs/api.md).
function _M.svg(desc)
  if type(desc) ~= "table" then
    error("graphviz.svg: desc must be a table (wf:describe()), got " .. type(desc), 2)
  end
  local src, nodes, edges = dot_text(desc, true)
  local raw, err = require("weft.core.gv").render(src, "svg")
  if not raw then return nil, err end
  local by_key = {}
  for _, n in ipairs(nodes) do by_key[_M.node_id(n.id)] = n end
  local start = raw:find("<svg", 1, true)
  if not start then return nil, "graphviz: no <svg> element in Graphviz's output" end
  local out = raw:sub(start):gsub("<!%-%-.-%-%->\n?", "")
  out = out:gsub("^<svg([^>]*)>", function(attrs)
    attrs = attrs:gsub("%s+width=\"[^\"]*\"", ""):gsub("%s+height=\"[^\"]*\"", "")
    return "<svg class=\"weft-graph\"" .. attrs .. ">"
  end, 1)
  out = out:gsub("<title>wf</title>", function()
    return "<title>" .. xml(desc.name or "workflow") .. "</title>"
  end, 1)
  local n_nodes, n_edges
  out, n_nodes = out:gsub("<g id=\"(wfn_[%w_]*)\" class=\"node\">\n<title>[^<]*</title>", function(key)
    local n = by_key[key]
    local id = xml(n.id)
    return format("<g id=\"%s\" class=\"node %s%s\" data-executor=\"%s\">\n<title>%s</title>",
      key, NODE_CLASS[n.kind] or "other", n.id == desc.start and " start" or "", id, id)
  end)
  out, n_edges = out:gsub("<g id=\"wfe_(%d+)\" class=\"edge\">\n<title>[^<]*</title>", function(k)
    local e = edges[tonumber(k)]
    local from, to = xml(e.from), xml(e.to)
    return format("<g id=\"wfe_%s\" class=\"edge %s\" data-kind=\"%s\" data-from=\"%s\" data-to=\"%s\">\n<title>%s &#8594; %s</title>",
      k, EDGE_CLASS[e.kind or "direct"] or "other", xml(e.kind or "direct"), from, to, from, to)
  end)
  if n_nodes ~= #nodes or n_edges ~= #edges then
    return nil, format("graphviz: unexpected SVG output (%d of %d nodes, %d of %d edges found)",
      n_nodes, #nodes, n_edges, #edges)
  end
  return out
end

return _M
