// The official OpenAI Node.js SDK against ctxembed's /v1/embeddings.
// Usage: node openai_client.mjs BASE_URL API_KEY MODEL
// Prints one JSON object: the vectors the SDK returned with its default
// encoding, with encoding_format "float" and "base64" (strings), the model
// and usage, and the error a bad request raised.
import OpenAI from "openai";

const [baseURL, apiKey, model] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey, maxRetries: 0, timeout: 30000 });
const input = ["the dog bit the man", "a b", "Ünïcode and emoji 🙂 text"];

const byDefault = await client.embeddings.create({ model, input });
const asFloat = await client.embeddings.create({
  model, input, encoding_format: "float",
});
const asBase64 = await client.embeddings.create({
  model, input, encoding_format: "base64",
});
let error = null;
try {
  await client.embeddings.create({ model: "no-such-model", input: "x" });
} catch (e) {
  error = { status: e.status, type: e.type, code: e.code, message: e.message };
}
console.log(JSON.stringify({
  default: byDefault.data.map((d) => Array.from(d.embedding)),
  float: asFloat.data.map((d) => d.embedding),
  base64: asBase64.data.map((d) => d.embedding),
  model: asFloat.model,
  usage: asFloat.usage,
  error,
}));
