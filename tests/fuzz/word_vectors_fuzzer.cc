// libFuzzer target: the word-vector parsers (fastText .bin, .vec text,
// word2vec binary) on arbitrary bytes, and lookups on whatever parses.
// CTXEMBED_FUZZ_FORMAT picks the parser: 0 .bin, 1 .vec, 2 word2vec, 3 by
// content (ParseWordVectors, what the server runs).
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "model/fasttext_vectors.h"
#include "model/static_vectors.h"
#include "model/word_vectors.h"

namespace {

void Exercise(const ctxembed::WordVectors& v) {
  std::vector<float> out(v.dim());
  for (const char* word :
       {"a", "the", "</s>", "", "longerwordwithngrams", "\xc3\xa9t\xc3\xa9"}) {
    v.Lookup(word, out.data());
    v.Contains(word);
    v.Count(word);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view bytes(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<std::unique_ptr<const ctxembed::WordVectors>> v;
#if CTXEMBED_FUZZ_FORMAT == 0
  v = ctxembed::FastTextVectors::Parse(bytes, "fuzz");
#elif CTXEMBED_FUZZ_FORMAT == 1
  v = ctxembed::StaticVectors::ParseText(bytes, "fuzz");
#elif CTXEMBED_FUZZ_FORMAT == 2
  v = ctxembed::StaticVectors::ParseBinary(bytes, "fuzz");
#else
  v = ctxembed::ParseWordVectors(bytes, "fuzz");
#endif
  if (v.ok()) Exercise(**v);
  return 0;
}
