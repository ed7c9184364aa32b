// Times one ONNX model in ONNX Runtime (CPU) for bench/compare_torch.py:
//   node time_ort.js MODEL.onnx BATCH TOKENS MIN_SECONDS THREADS [LENGTHS]
// Input "ids" int64 [batch, tokens]; prints {"ms_per_batch": median} as JSON.
// With LENGTHS (comma-separated, one per sentence; TOKENS is their maximum)
// the ids are padded with 0. Models with an input "rev_ids" are
// compare_torch.py's masked ones: "rev_ids" (each sentence's ids reversed,
// padded) and "mask" (float); models with "mask" and no "rev_ids" are
// compare_bert.py's transformers: "mask" (int64 attention mask).
// Settings: its best on this machine for one request at a time: all graph
// optimizations, sequential execution, THREADS intra-op threads.
// With ORT_PRINT_OUTPUT=1 in the environment the JSON also holds "output":
// the first output's values (for accuracy checks of quantized models).
'use strict';
const ort = require('onnxruntime-node');

async function main() {
  const [model, batch, tokens, minSeconds, threads, lengthList] =
      process.argv.slice(2);
  const session = await ort.InferenceSession.create(model, {
    intraOpNumThreads: Number(threads),
    interOpNumThreads: 1,
    graphOptimizationLevel: 'all',
    executionMode: 'sequential',
  });
  const b = Number(batch), t = Number(tokens), n = b * t;
  const lengths = lengthList ? lengthList.split(',').map(Number)
                             : new Array(b).fill(t);
  const ids = new BigInt64Array(n);
  for (let i = 0; i < b; ++i) {
    for (let j = 0; j < lengths[i]; ++j) {
      ids[i * t + j] = BigInt(1 + (((i * t + j) * 7919) % 999));
    }
  }
  const feeds = {ids: new ort.Tensor('int64', ids, [b, t])};
  if (session.inputNames.includes('rev_ids')) {
    const rev = new BigInt64Array(n), mask = new Float32Array(n);
    for (let i = 0; i < b; ++i) {
      for (let j = 0; j < lengths[i]; ++j) {
        rev[i * t + j] = ids[i * t + lengths[i] - 1 - j];
        mask[i * t + j] = 1;
      }
    }
    feeds.rev_ids = new ort.Tensor('int64', rev, [b, t]);
    feeds.mask = new ort.Tensor('float32', mask, [b, t]);
  } else if (session.inputNames.includes('mask')) {
    // A transformer's attention mask (bench/compare_bert.py): int64.
    const mask = new BigInt64Array(n);
    for (let i = 0; i < b; ++i) {
      for (let j = 0; j < lengths[i]; ++j) mask[i * t + j] = 1n;
    }
    feeds.mask = new ort.Tensor('int64', mask, [b, t]);
  }
  for (let i = 0; i < 3; ++i) await session.run(feeds);
  const times = [];
  const begin = process.hrtime.bigint();
  const budget = BigInt(Math.round(Number(minSeconds) * 1e9));
  while (process.hrtime.bigint() - begin < budget || times.length < 5) {
    const start = process.hrtime.bigint();
    await session.run(feeds);
    times.push(Number(process.hrtime.bigint() - start) / 1e6);
  }
  times.sort((x, y) => x - y);
  const result = {ms_per_batch: times[times.length >> 1]};
  if (process.env.ORT_PRINT_OUTPUT === '1') {
    const out = await session.run(feeds);
    result.output = Array.from(out[session.outputNames[0]].data);
  }
  console.log(JSON.stringify(result));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
