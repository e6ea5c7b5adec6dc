-- weft.mcp's pure parts: JSON-RPC framing and the text a tools/call
-- result gives the model (the protocol itself runs against the official
-- servers in spec/integration/mcp_spec.lua).
local mcp = require "weft.mcp"
local json = require "weft.json"

describe("weft.mcp", function()
  describe("decode", function()
    it("takes a JSON-RPC 2.0 object", function()
      local m = assert(mcp.decode('{"jsonrpc":"2.0","id":3,"result":{}}'))
      assert.equal(3, m.id)
    end)

    it("refuses what is not JSON-RPC 2.0, naming why", function()
      assert.same({ nil, "not a JSON-RPC 2.0 message (jsonrpc is not \"2.0\")" }, { mcp.decode('{"id":1}') })
      assert.same({ nil, "not a JSON-RPC message (not an object)" }, { mcp.decode("[1,2]") })
      local m, err = mcp.decode("starting up...")
      assert.is_nil(m)
      assert.truthy(err:find("^not JSON: "))
    end)
  end)

  describe("encode", function()
    it("writes requests with an id and notifications without", function()
      assert.same({ jsonrpc = "2.0", id = 7, method = "tools/list", params = {} },
                  json.decode(mcp.encode("tools/list", json.object(), 7)))
      assert.same({ jsonrpc = "2.0", method = "notifications/initialized" },
                  json.decode(mcp.encode("notifications/initialized")))
    end)
  end)

  describe("content_text", function()
    it("joins text blocks and embedded text resources", function()
      assert.equal("a\nb", mcp.content_text({ content = { { type = "text", text = "a" },
        { type = "resource", resource = { uri = "x://1", text = "b" } } } }))
    end)

    it("describes images, audio and links", function()
      assert.equal("[image image/png, 4 bytes of base64]\n[resource file:///a]",
        mcp.content_text({ content = { { type = "image", mimeType = "image/png", data = "AAAA" },
                                       { type = "resource_link", uri = "file:///a", name = "a" } } }))
    end)

    it("gives structured content as JSON when there is no text", function()
      assert.same({ t = 1 }, json.decode(mcp.content_text({ content = {}, structuredContent = { t = 1 } })))
    end)

    it("ignores blocks it does not know", function()
      assert.equal("ok", mcp.content_text({ content = { { type = "hologram" }, 42, { type = "text", text = "ok" } } }))
    end)
  end)
end)
