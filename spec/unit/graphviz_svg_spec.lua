-- spec/unit/graphviz_svg_spec.lua — weft.graphviz.svg (a workflow drawn by
-- Graphviz's dot layout, ready to inline in the dashboard) and the binding
-- under it, weft.core.gv.render: well-formed SVG of a small tag set, one
-- node group per executor and one edge group per drawn edge with their
-- ids/classes/data attributes, condition names on the edges, hostile
-- executor ids and condition names kept inert and read back exactly,
-- Graphviz's errors and the size limits returned as errors.
local weft = require "weft"
local graphviz = require "weft.graphviz"
local gv = require "weft.core.gv"

local SRC = os.getenv("WEFT_SOURCE_DIR") or "."
local noop = function() end

-- The tags Graphviz's SVG renderer writes for our graphs.
local TAGS = { svg = true, g = true, title = true, path = true, polygon = true,
  polyline = true, ellipse = true, text = true }

local ENTITIES = { amp = "&", lt = "<", gt = ">", quot = '"', apos = "'" }

-- Character references of s decoded (named, decimal, hex); raises on a
-- malformed or unknown one, so a stray "&" fails the test.
local function unxml(s)
  local function utf8(cp)
    if cp < 0x80 then return string.char(cp) end
    if cp < 0x800 then return string.char(0xC0 + math.floor(cp / 64), 0x80 + cp % 64) end
    if cp < 0x10000 then
      return string.char(0xE0 + math.floor(cp / 4096), 0x80 + math.floor(cp / 64) % 64, 0x80 + cp % 64)
    end
    return string.char(0xF0 + math.floor(cp / 262144), 0x80 + math.floor(cp / 4096) % 64,
      0x80 + math.floor(cp / 64) % 64, 0x80 + cp % 64)
  end
  local out = s:gsub("&([^;]*);?", function(ref)
    if ENTITIES[ref] then return ENTITIES[ref] end
    local n = ref:match("^#(%d+)$")
    if n then return utf8(tonumber(n)) end
    n = ref:match("^#x(%x+)$")
    if n then return utf8(tonumber(n, 16)) end
    error("malformed character reference &" .. ref .. ";")
  end)
  return out
end

-- A strict reader for the SVG subset: elements of TAGS only, attributes
-- name="value" without "<" inside, text without "<" or ">", every tag
-- closed in order, one root <svg>. Returns the root {tag, attrs, kids} where
-- kids holds elements and decoded text strings.
local function parse(svg)
  local pos, stack = 1, {}
  local root
  while pos <= #svg do
    local lt = svg:find("<", pos, true)
    local text = svg:sub(pos, (lt or #svg + 1) - 1)
    assert(not text:find(">", 1, true), "a '>' in text: " .. text)
    if #stack > 0 then
      local kids = stack[#stack].kids
      kids[#kids + 1] = unxml(text)
    else
      assert(text:match("^%s*$"), "text outside the root: " .. text)
    end
    if not lt then break end
    local close = svg:match("^</([%w:]+)>", lt)
    if close then
      local top = table.remove(stack)
      assert(top and top.tag == close, "unbalanced </" .. close .. ">")
      pos = lt + #close + 3
    else
      local tag, rest, e = svg:match("^<([%w:]+)([^<>]*)>()", lt)
      assert(tag, "not a tag at " .. lt .. ": " .. svg:sub(lt, lt + 40))
      assert(TAGS[tag], "unexpected element <" .. tag .. ">")
      local self_closing = rest:sub(-1) == "/"
      if self_closing then rest = rest:sub(1, -2) end
      local attrs = {}
      local left = rest:gsub('%s+([%w:_-]+)="([^"<]*)"', function(k, v)
        assert(attrs[k] == nil, "attribute " .. k .. " twice")
        attrs[k] = unxml(v)
        return ""
      end)
      assert(left:match("^%s*$"), "malformed attributes in <" .. tag .. ">: " .. left)
      local el = { tag = tag, attrs = attrs, kids = {} }
      if #stack > 0 then
        local kids = stack[#stack].kids
        kids[#kids + 1] = el
      else
        assert(not root and tag == "svg", "the root is not one <svg>")
        root = el
      end
      if not self_closing then stack[#stack + 1] = el end
      pos = e
    end
  end
  if #stack > 0 then error("unclosed <" .. stack[#stack].tag .. ">") end
  return root
end

-- Every element under el (depth first) for which pred is true.
local function find_all(el, pred, acc)
  acc = acc or {}
  for _, k in ipairs(el.kids) do
    if type(k) == "table" then
      if pred(k) then acc[#acc + 1] = k end
      find_all(k, pred, acc)
    end
  end
  return acc
end

local function has_class(el, c)
  return (" " .. (el.attrs.class or "") .. " "):find(" " .. c .. " ", 1, true) ~= nil
end

-- The text of el's first child element of tag (children's text joined).
local function child_text(el, tag)
  for _, k in ipairs(el.kids) do
    if type(k) == "table" and k.tag == tag then
      local t = {}
      for _, s in ipairs(k.kids) do if type(s) == "string" then t[#t + 1] = s end end
      return table.concat(t)
    end
  end
end

-- The label drawn in el: its <text> elements' text, one per line.
local function drawn_label(el)
  local lines = {}
  for _, k in ipairs(el.kids) do
    if type(k) == "table" and k.tag == "text" then lines[#lines + 1] = child_text({ kids = { k } }, "text") end
  end
  return table.concat(lines, "\n")
end

local function groups(root, class)
  return find_all(root, function(e) return e.tag == "g" and has_class(e, class) end)
end

local function shapes()
  return dofile(SRC .. "/spec/fixtures/cli/shapes.lua")
end

-- Ids and names a page must show as text and never run.
local HOSTILE = {
  "<script>alert(1)</script>",
  'say "hi"',
  "it's",
  "Tom & Jerry",
  "&amp; &lt;b&gt; &#60;",
  "two\nlines",
  "ünïcødé ✓ 日本",
  "back\\slash \\N \\G \\n",
  "]]> <!-- --> <![CDATA[",
  "<img src=x onerror=alert(1)>",
}

describe("graphviz.svg", function()
  it("draws one node group per executor with its id, classes, data-executor and title", function()
    local wf = shapes()
    local desc = wf:describe()
    local root = parse(assert(graphviz.svg(desc)))
    local nodes = groups(root, "node")
    assert.are.equal(#desc.executors, #nodes)
    local by_exec = {}
    for _, g in ipairs(nodes) do
      local id = g.attrs["data-executor"]
      assert.are.equal(id, child_text(g, "title"))
      assert.are.equal(id, drawn_label(g))
      assert.are.equal(graphviz.node_id(id), g.attrs.id)
      by_exec[id] = g
    end
    for _, e in ipairs(desc.executors) do assert.is_table(by_exec[e.id], e.id) end
    assert.is_true(has_class(by_exec.router, "start"))
    assert.is_true(has_class(by_exec.router, "worker"))
    assert.is_false(has_class(by_exec.small, "start"))
    assert.is_true(has_class(by_exec.join, "orchestrator"))
    assert.is_true(has_class(by_exec['check "q"'], "validator"))
  end)

  it("is an inline-ready drawing: no prolog, DOCTYPE, comments or size in pt; viewBox kept", function()
    local svg = assert(graphviz.svg(shapes():describe()))
    assert.matches("^<svg ", svg)
    assert.matches("</svg>\n$", svg)
    for _, bad in ipairs({ "<?xml", "<!DOCTYPE", "<!--" }) do
      assert.is_nil(svg:find(bad, 1, true), bad)
    end
    local root = parse(svg)
    assert.is_nil(root.attrs.width)
    assert.is_nil(root.attrs.height)
    assert.matches("^[%d.]+ [%d.]+ [%d.]+ [%d.]+$", root.attrs.viewBox)
    assert.are.equal("weft-graph", root.attrs.class)
    assert.are.equal("shapes", child_text(groups(root, "graph")[1], "title"))
  end)

  it("labels edges with their condition names and gives them classes by kind and their ends", function()
    local desc = shapes():describe()
    local root = parse(assert(graphviz.svg(desc)))
    local seen = {}
    for _, g in ipairs(groups(root, "edge")) do
      assert.matches("^wfe_%d+$", g.attrs.id)
      local kind = g.attrs.class:match("^edge (%S+)$")
      seen[#seen + 1] = table.concat({ g.attrs["data-from"], g.attrs["data-to"], kind,
        g.attrs["data-kind"], drawn_label(g) }, "|")
      assert.are.equal(g.attrs["data-from"] .. " → " .. g.attrs["data-to"], child_text(g, "title"))
    end
    table.sort(seen)
    assert.are.same({
      "big|split|cond|conditional|always",
      "join|check \"q\"|direct|direct|",
      "other|w1|fan-out|fan_out|select",
      "other|w2|fan-out|fan_out|select",
      "router|big|switch|switch|case 2",
      "router|other|switch|switch|default",
      "router|small|switch|switch|case 1: is_small",
      "small|split|direct|direct|",
      "split|w1|fan-out|fan_out|fan-out",
      "split|w2|fan-out|fan_out|fan-out",
      "w1|join|fan-in|fan_in|fan-in",
      "w2|join|fan-in|fan_in|fan-in",
    }, seen)
  end)

  it("keeps hostile executor ids and condition names inert and reads them back exactly", function()
    local execs, wfb = {}, nil
    for i, id in ipairs(HOSTILE) do execs[i] = weft.executor(id, noop) end
    wfb = weft.workflow("<b>wf</b> & \"co\"'s\n"):start(execs[1])
    for i = 1, #execs - 1 do
      wfb = wfb:edge(execs[i], execs[i + 1], { when = function() return true end, name = HOSTILE[#HOSTILE - i + 1] })
    end
    local desc = wfb:build():describe()
    local svg = assert(graphviz.svg(desc))
    -- nothing executable: no element but the drawing's, no event handler
    assert.is_nil(svg:lower():find("<script", 1, true))
    assert.is_nil(svg:lower():find("<img", 1, true))
    assert.is_nil(svg:lower():find("<!%[cdata%["))
    local root = parse(svg) -- raises on anything unescaped
    for _, el in ipairs(find_all(root, function() return true end)) do
      for k in pairs(el.attrs) do assert.is_nil(k:lower():match("^on"), k) end
    end
    assert.are.equal("<b>wf</b> & \"co\"'s\n", child_text(groups(root, "graph")[1], "title"))
    local nodes = groups(root, "node")
    assert.are.equal(#HOSTILE, #nodes)
    local got = {}
    for _, g in ipairs(nodes) do
      local id = g.attrs["data-executor"]
      got[#got + 1] = id
      assert.are.equal(id, child_text(g, "title"))
      assert.are.equal(id, drawn_label(g))
      assert.matches("^wfn_[%w_]+$", g.attrs.id)
      assert.are.equal(graphviz.node_id(id), g.attrs.id)
    end
    local want = { unpack(HOSTILE) }
    table.sort(want)
    table.sort(got)
    assert.are.same(want, got)
    local labels = {}
    for _, g in ipairs(groups(root, "edge")) do
      labels[#labels + 1] = drawn_label(g)
      assert.is_string(g.attrs["data-from"])
    end
    table.sort(labels)
    local names = {}
    for i = 2, #HOSTILE do names[#names + 1] = HOSTILE[i] end
    table.sort(names)
    assert.are.same(names, labels)
  end)

  it("draws loops: a cycle back to the start, a two-node cycle and a self-loop", function()
    local a, b, c = weft.executor("a", noop), weft.executor("b", noop), weft.executor("c", noop)
    local yes = function() return true end
    local desc = weft.workflow("loops"):start(a)
      :edge(a, b):edge(b, c)
      :edge(c, a, { when = yes, name = "again" })
      :edge(c, b, { when = yes, name = "retry" })
      :edge(b, b, { when = yes, name = "self" })
      :build():describe()
    local root = parse(assert(graphviz.svg(desc)))
    assert.are.equal(3, #groups(root, "node"))
    local labels = {}
    for _, g in ipairs(groups(root, "edge")) do labels[#labels + 1] = drawn_label(g) end
    table.sort(labels)
    assert.are.same({ "", "", "again", "retry", "self" }, labels)
  end)

  it("replaces bytes that are not UTF-8 and control characters XML forbids", function()
    local desc = { name = "w", start = "a\255b", executors = {
      { id = "a\255b", kind = "worker" }, { id = "c\1d\0e", kind = "worker" } },
      edges = { { kind = "direct", from = { "a\255b" }, to = { "c\1d\0e" } } } }
    local root = parse(assert(graphviz.svg(desc)))
    local ids = {}
    for _, g in ipairs(groups(root, "node")) do ids[#ids + 1] = g.attrs["data-executor"] end
    table.sort(ids)
    assert.are.same({ "a\239\191\189b", "c\239\191\189d\239\191\189e" }, ids)
  end)

  it("draws a large graph (laid out for speed: straight edges) with every executor and edge", function()
    local execs, edges = {}, {}
    for i = 1, 150 do
      execs[i] = { id = "e" .. i, kind = "worker" }
      if i > 1 then edges[#edges + 1] = { kind = "direct", from = { "e" .. (i - 1) }, to = { "e" .. i } } end
    end
    local root = parse(assert(graphviz.svg({ name = "large", start = "e1", executors = execs, edges = edges })))
    assert.are.equal(150, #groups(root, "node"))
    assert.are.equal(149, #groups(root, "edge"))
  end)

  it("returns nil and an error naming the limit for a graph over Graphviz's size limits", function()
    local execs = {}
    for i = 1, gv.MAX_NODES + 1 do execs[i] = { id = "e" .. i, kind = "worker" } end
    local svg, err = graphviz.svg({ name = "big", start = "e1", executors = execs, edges = {} })
    assert.is_nil(svg)
    assert.matches(("%d nodes and 0 edges, over the limit of %d nodes"):format(gv.MAX_NODES + 1, gv.MAX_NODES), err)
  end)

  it("raises when desc is not a description table", function()
    assert.has_error(function() graphviz.svg("x") end,
      "graphviz.svg: desc must be a table (wf:describe()), got string")
  end)
end)

describe("graphviz.node_id", function()
  it("keeps [0-9A-Za-z] and writes every other byte as _ and two hex digits", function()
    assert.are.equal("wfn_fetch_2dpage", graphviz.node_id("fetch-page"))
    assert.are.equal("wfn_a_5fb", graphviz.node_id("a_b"))
    assert.are.equal("wfn__3cs_3e", graphviz.node_id("<s>"))
    assert.are.equal("wfn__c3_bc", graphviz.node_id("ü"))
    assert.are.equal("wfn_", graphviz.node_id(""))
    assert.are_not.equal(graphviz.node_id("a_5fb"), graphviz.node_id("a_b"))
  end)
end)

describe("weft.core.gv.render", function()
  it("returns Graphviz's syntax error, and renders again afterwards", function()
    local svg, err, code = gv.render("digraph { a -> }")
    assert.is_nil(svg)
    assert.are.equal("dot source: syntax error in line 1 near '}'", err)
    assert.are.equal("error", code)
    assert.matches("<svg", assert(gv.render("digraph { a -> b }", "svg")))
  end)

  it("never parses what follows one source's graph into the next call's", function()
    assert.matches("<title>a</title>", assert(gv.render("digraph a {} digraph zzz {}")))
    local svg = assert(gv.render("digraph q {}"))
    assert.matches("<title>q</title>", svg)
    assert.is_nil(svg:find("zzz", 1, true))
    -- and a syntax error inside a string does not leave the scanner in it
    assert.is_nil(gv.render('digraph { a [label="open'))
    assert.matches("<title>r</title>", assert(gv.render("digraph r { x }")))
  end)

  it("names the line of the source in a syntax error after earlier renders", function()
    assert(gv.render("digraph { a -> b }\n\n\n"))
    assert.are.equal("dot source: syntax error in line 2 near '}'", select(2, gv.render("digraph {\n a -> }")))
  end)

  it("refuses a source with a NUL byte or over MAX_SOURCE bytes", function()
    assert.are.equal("dot source: a NUL byte at offset 9", select(2, gv.render("digraph {\0}")))
    local big = "digraph { " .. ("a;"):rep(gv.MAX_SOURCE / 2) .. " }"
    assert.matches("over the limit of " .. gv.MAX_SOURCE, select(2, gv.render(big)))
  end)

  it("raises for a format other than svg", function()
    assert.has_error(function() gv.render("digraph {}", "png") end)
  end)
end)
