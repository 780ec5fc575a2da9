// A scripted MCP client on the official TypeScript SDK, for the end-to-end
// tests: node client.mjs URL UPSTREAM (the agent's API key comes from the
// PORTCULLIS_AGENT_KEY environment variable, never the command line;
// UPSTREAM is the demo upstream's base URL, whose admin endpoint makes it
// send a resource update). It prints one JSON object describing what
// happened and exits 0, or prints the error and exits 1.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import {
  ElicitRequestSchema,
  LoggingMessageNotificationSchema,
  ResourceUpdatedNotificationSchema,
} from "@modelcontextprotocol/sdk/types.js";

const url = process.argv[2];
const upstream = process.argv[3];
const key = process.env.PORTCULLIS_AGENT_KEY;
if (!url || !upstream || !key) {
  console.error("usage: PORTCULLIS_AGENT_KEY=... node client.mjs URL UPSTREAM");
  process.exit(2);
}

const out = { elicitations: [], progress: [], logs: [], updated: [] };
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

// Waits for what notifications bring: cond is checked whenever one
// arrives, until the deadline.
let wake = () => {};
const until = (what, cond, ms = 15000) =>
  new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${what} within ${ms} ms`)), ms);
    const check = () => {
      if (cond()) {
        clearTimeout(timer);
        wake = () => {};
        resolve();
      }
    };
    wake = check;
    check();
  });
client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => {
  out.logs.push(n.params.level);
  wake();
});
client.setNotificationHandler(ResourceUpdatedNotificationSchema, (n) => {
  out.updated.push(n.params.uri);
  wake();
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

  // The methods beyond tools, brokered by the gateway.
  await client.ping();
  const completed = await client.complete({
    ref: { type: "ref/prompt", name: "tools__summarize" },
    argument: { name: "topic", value: "in" },
  });
  out.completions = completed.completion.values;
  await client.setLoggingLevel("warning");
  await client.callTool({ name: "tools__log", arguments: {} });
  await until("log messages", () => out.logs.length >= 2);
  await client.subscribeResource({ uri: "tools__demo://readme" });
  const sent = await fetch(`${upstream}/admin/resources/updated`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ uri: "demo://readme" }),
  });
  if (sent.status !== 204) throw new Error(`the upstream did not send an update: HTTP ${sent.status}`);
  await until("resource update", () => out.updated.length >= 1);
  await client.unsubscribeResource({ uri: "tools__demo://readme" });
  // Cancellation: the caller gives up once the wait began.
  const abort = new AbortController();
  try {
    await client.callTool({ name: "tools__wait", arguments: {} }, undefined, {
      signal: abort.signal,
      onprogress: () => abort.abort("the test gives up"),
    });
    out.cancelled = false;
  } catch (err) {
    out.cancelled = abort.signal.aborted;
  }

  await transport.terminateSession();
  await client.close();
  console.log(JSON.stringify(out));
} catch (err) {
  console.error(`tsclient: ${err?.stack ?? err}`);
  process.exit(1);
}
