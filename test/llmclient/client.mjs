// The official OpenAI and Anthropic TypeScript SDKs, pointed at a
// Portcullis data plane: node client.mjs DATAPLANE_URL. The agent's key is
// PORTCULLIS_AGENT_KEY, a key of an agent no policy lets call models is
// PORTCULLIS_DENIED_KEY. Prints one JSON object of what each call returned.
import OpenAI from "openai";
import Anthropic from "@anthropic-ai/sdk";

const base = process.argv[2];
const key = process.env.PORTCULLIS_AGENT_KEY;
const deniedKey = process.env.PORTCULLIS_DENIED_KEY;
const out = {};

const errorOf = (e) => ({ status: e.status ?? null, body: e.error ?? null, code: e.code ?? null, message: String(e.message).slice(0, 300) });

const openai = new OpenAI({ baseURL: `${base}/llm/openai/v1`, apiKey: key, maxRetries: 0 });
const weatherTool = { type: "function", function: { name: "get_weather", parameters: { type: "object", properties: { city: { type: "string" } } } } };

const chat = await openai.chat.completions.create({ model: "openai/gpt-4o", messages: [{ role: "user", content: "hello from node" }] });
out.chat = { text: chat.choices[0].message.content, usage: chat.usage };

let text = "", chunks = 0, usageChunks = 0;
for await (const chunk of await openai.chat.completions.create({ model: "openai/gpt-4o", stream: true, messages: [{ role: "user", content: "stream chunks=8" }] })) {
  chunks++;
  if (chunk.choices.length === 0) usageChunks++;
  text += chunk.choices[0]?.delta?.content ?? "";
}
out.chatStream = { text, chunks, usageChunks };

let usage = null;
text = "";
for await (const chunk of await openai.chat.completions.create({ model: "fast", stream: true, stream_options: { include_usage: true }, messages: [{ role: "user", content: "stream with usage" }] })) {
  if (chunk.usage) usage = chunk.usage;
  text += chunk.choices[0]?.delta?.content ?? "";
}
out.chatStreamUsage = { text, usage };

const tool = await openai.chat.completions.create({ model: "openai/gpt-4o", tools: [weatherTool], messages: [{ role: "user", content: "what is the weather in Oslo?" }] });
out.chatTool = { name: tool.choices[0].message.tool_calls?.[0]?.function?.name ?? null, args: tool.choices[0].message.tool_calls?.[0]?.function?.arguments ?? null };

const rs = openai.responses.stream({ model: "openai/gpt-4o", input: "respond in a stream" });
let deltas = "";
rs.on("response.output_text.delta", (e) => { deltas += e.delta; });
const final = await rs.finalResponse();
out.responsesStream = { deltas, text: final.output_text, usage: final.usage };

try {
  await openai.chat.completions.create({ model: "openai/gpt-9", messages: [{ role: "user", content: "hi" }] });
  out.unknownModel = { error: null };
} catch (e) {
  out.unknownModel = errorOf(e);
}
try {
  await new OpenAI({ baseURL: `${base}/llm/openai/v1`, apiKey: deniedKey, maxRetries: 0 }).chat.completions.create({ model: "openai/gpt-4o", messages: [{ role: "user", content: "hi" }] });
  out.deniedOpenAI = { error: null };
} catch (e) {
  out.deniedOpenAI = errorOf(e);
}

const anthropic = new Anthropic({ baseURL: `${base}/llm/anthropic`, apiKey: key, maxRetries: 0 });
const msg = await anthropic.messages.create({ model: "anthropic/claude-sonnet", max_tokens: 256, messages: [{ role: "user", content: "hello claude" }] });
out.messages = { text: msg.content[0].text, usage: msg.usage };

const ms = anthropic.messages.stream({ model: "anthropic/claude-sonnet", max_tokens: 256, messages: [{ role: "user", content: "stream chunks=6" }] });
let mdeltas = "";
ms.on("text", (t) => { mdeltas += t; });
const fm = await ms.finalMessage();
out.messagesStream = { deltas: mdeltas, text: fm.content[0].text, usage: fm.usage };

const mt = await anthropic.messages.create({ model: "anthropic/claude-sonnet", max_tokens: 256, tools: [{ name: "get_weather", input_schema: { type: "object" } }], messages: [{ role: "user", content: "weather?" }] });
out.messagesTool = { type: mt.content[0].type, name: mt.content[0].name ?? null, input: mt.content[0].input ?? null };

try {
  await anthropic.messages.create({ model: "anthropic/claude-haiku", max_tokens: 16, messages: [{ role: "user", content: "hi" }] });
  out.deniedAnthropic = { error: null };
} catch (e) {
  out.deniedAnthropic = errorOf(e);
}

process.stdout.write(JSON.stringify(out));
