// Token ids from @huggingface/transformers (an implementation independent of
// ctxembed's, reading the same tokenizer.json) for tests/python/
// test_transformer.py.
// Usage: node hf_tokenize.mjs MODEL_DIR SENTENCES_JSON  -> JSON [[ids], ...]
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { AutoTokenizer, env } from '@huggingface/transformers';

const [modelDir, sentencesFile] = process.argv.slice(2);
env.allowRemoteModels = false;
env.localModelPath = path.dirname(path.resolve(modelDir)) + '/';
const tokenizer = await AutoTokenizer.from_pretrained(path.basename(modelDir));
const sentences = JSON.parse(readFileSync(sentencesFile, 'utf8'));
const ids = sentences.map(
  (s) => Array.from(tokenizer(s, { truncation: false }).input_ids.data, Number));
process.stdout.write(JSON.stringify(ids));
