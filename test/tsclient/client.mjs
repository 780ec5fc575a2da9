// A scripted MCP client on the official TypeScript SDK, for the end-to-end
// tests: node client.mjs URL (the agent's API key comes from the
// PORTCULLIS_AGENT_KEY environment variable, never the command line).
// It prints one JSON object describing what happened and exits 0, or
// prints the error and exits 1.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { ElicitRequestSchema } from "@modelcontextprotocol/sdk/types.js";

const url = process.argv[2];
const key = process.env.PORTCULLIS_AGENT_KEY;
if (!url || !key) {
  console.error("usage: PORTCULLIS_AGENT_KEY=... node client.mjs URL");
  process.exit(2);
}

const out = { elicitations: [], progress: [] };
const transport = new StreamableHTTPClientTransport(new URL(url), {
  requestInit: { headers: { Authorization: `Bearer ${key}` } },
});
const client = new Client(
  { name: "tsclient-e2e", version: "1.0.0" },
  { capabilities: { elicitation: {} } },
);
client.setRequestHandler(ElicitRequestSchema, async (req) => {
  out.elicitations.push(req.params.message);
  return { action: "accept", content: { confirm: true } };
});

const text = (res) => (res.content ?? []).filter((c) => c.type === "text").map((c) => c.text).join("\n");

try {
  await client.connect(transport);
  out.sessionId = transport.sessionId ?? null;
  out.protocolVersion = transport.protocolVersion ?? null;
  out.capabilities = client.getServerCapabilities() ?? null;
  out.tools = (await client.listTools()).tools.map((t) => t.name).sort();
  out.weather = text(await client.callTool({ name: "demo__get_weather", arguments: { city: "Oslo" } }));
  const counted = await client.callTool(
    { name: "tools__count", arguments: { steps: 3 } },
    undefined,
    { onprogress: (p) => out.progress.push(p.progress) },
  );
  out.count = text(counted);
  out.confirm = text(await client.callTool({ name: "tools__confirm_transfer", arguments: { amount: 250 } }));
  const refused = await client.callTool({ name: "demo__send_payment", arguments: { to: "bob", amount: 900 } });
  out.refused = { isError: refused.isError === true, reason: refused._meta?.["io.portcullis/refusal"]?.reason ?? null };
  await transport.terminateSession();
  await client.close();
  console.log(JSON.stringify(out));
} catch (err) {
  console.error(`tsclient: ${err?.stack ?? err}`);
  process.exit(1);
}
