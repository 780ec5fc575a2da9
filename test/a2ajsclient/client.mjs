// A scripted A2A client on the official JavaScript SDK (@a2a-js/sdk), for
// the end-to-end tests: node client.mjs AGENT_URL CONTROL_URL, where
// AGENT_URL is the gateway's URL of a remote agent (http://…/a2a/NAME)
// and CONTROL_URL the test agent's own base URL (to release its waiting
// tasks). The agents' API keys come from the environment, never the
// command line: PORTCULLIS_AGENT_KEY (may use the agent) and
// PORTCULLIS_OTHER_KEY (may only read tasks). It prints one JSON object
// describing what happened and exits 0, or prints the error and exits 1.
import { randomUUID } from "node:crypto";
import {
  ClientFactory,
  ClientFactoryOptions,
  DefaultAgentCardResolver,
  JsonRpcTransportFactory,
} from "@a2a-js/sdk/client";

const [agentURL, controlURL] = process.argv.slice(2);
const key = process.env.PORTCULLIS_AGENT_KEY;
const otherKey = process.env.PORTCULLIS_OTHER_KEY;
if (!agentURL || !controlURL || !key || !otherKey) {
  console.error("usage: PORTCULLIS_AGENT_KEY=… PORTCULLIS_OTHER_KEY=… node client.mjs AGENT_URL CONTROL_URL");
  process.exit(2);
}

const ROLE_USER = 1;
const stateNames = {
  1: "SUBMITTED", 2: "WORKING", 3: "COMPLETED", 4: "FAILED", 5: "CANCELED", 6: "INPUT_REQUIRED", 7: "REJECTED", 8: "AUTH_REQUIRED",
};
const state = (s) => stateNames[s] ?? String(s);

// authFetch sends the agent's key with every request: the card and the
// JSON-RPC calls alike.
const authFetch = (bearer) => (input, init = {}) => {
  const headers = new Headers(init.headers);
  headers.set("Authorization", `Bearer ${bearer}`);
  return fetch(input, { ...init, headers });
};

async function newClient(bearer) {
  const fetchImpl = authFetch(bearer);
  const factory = new ClientFactory(
    ClientFactoryOptions.createFrom(ClientFactoryOptions.default, {
      transports: [new JsonRpcTransportFactory({ fetchImpl })],
      cardResolver: new DefaultAgentCardResolver({ fetchImpl }),
    }),
  );
  // Each agent's card is below its own path on the gateway: the full URL
  // with an empty path (the SDK would otherwise look at the origin's root).
  return factory.createFromUrl(`${agentURL}/.well-known/agent-card.json`, "");
}

const message = (text) => ({
  message: { messageId: randomUUID(), role: ROLE_USER, parts: [{ content: { $case: "text", value: text } }] },
});

// describe names one stream event.
function describe(ev) {
  const p = ev.payload;
  switch (p?.$case) {
    case "task":
      return `task:${state(p.value.status?.state)}`;
    case "statusUpdate":
      return `status:${state(p.value.status?.state)}`;
    case "artifactUpdate":
      return `artifact:${p.value.artifact?.parts?.map((x) => x.content?.value).join("")}`;
    case "message":
      return "message";
  }
  return "unknown";
}

const errorOf = (e) => ({ name: e?.constructor?.name ?? "Error", message: String(e?.message ?? e) });

const out = {};
try {
  const raw = await (await authFetch(key)(`${agentURL}/.well-known/agent-card.json`)).text();
  out.cardText = raw;
  const client = await newClient(key);

  // Send: a task that completes with an echo.
  const sent = await client.sendMessage(message("hello"));
  out.send = {
    id: sent.id, contextId: sent.contextId, state: state(sent.status?.state),
    artifact: sent.artifacts?.[0]?.parts?.[0]?.content?.value,
  };

  // Stream: every update, in order.
  out.stream = [];
  for await (const ev of client.sendMessageStream(message("steps:3"))) out.stream.push(describe(ev));

  // Get and list.
  const got = await client.getTask({ id: sent.id });
  out.get = { id: got.id, state: state(got.status?.state) };
  // The SDK encodes a request field by field: unset enums must be 0.
  const listed = await client.listTasks({ contextId: sent.contextId, status: 0 });
  out.list = listed.tasks.map((t) => t.id);

  // Cancel a task that waits.
  out.cancel = [];
  let cancelID;
  for await (const ev of client.sendMessageStream(message("wait:js-cancel"))) {
    out.cancel.push(describe(ev));
    if (ev.payload?.$case === "task") cancelID = ev.payload.value.id;
    if (describe(ev) === "status:WORKING") {
      const canceled = await client.cancelTask({ id: cancelID });
      out.canceled = state(canceled.status?.state);
    }
  }

  // Drop a stream, then subscribe to its task again.
  const abort = new AbortController();
  let resumeID;
  try {
    for await (const ev of client.sendMessageStream(message("wait:js-resume"), { signal: abort.signal })) {
      if (ev.payload?.$case === "task") resumeID = ev.payload.value.id;
      if (describe(ev) === "status:WORKING") abort.abort();
    }
  } catch (e) {
    if (!abort.signal.aborted) throw e;
  }
  out.resubscribed = [];
  for await (const ev of client.resubscribeTask({ id: resumeID })) {
    out.resubscribed.push(describe(ev));
    if (ev.payload?.$case === "task") await fetch(`${controlURL}/control/release/js-resume`, { method: "POST" });
  }

  // Another agent: refused by policy, and cannot see this agent's task.
  const other = await newClient(otherKey);
  try {
    await other.sendMessage(message("hello"));
    out.denied = { name: "none" };
  } catch (e) {
    out.denied = errorOf(e);
  }
  try {
    await other.getTask({ id: sent.id });
    out.foreign = { name: "none" };
  } catch (e) {
    out.foreign = errorOf(e);
  }
  console.log(JSON.stringify(out));
} catch (e) {
  console.error(e?.stack ?? e);
  console.error(JSON.stringify(out));
  process.exit(1);
}
