// libFuzzer target: the UTF-8 check and both tokenizers (lower-casing on
// and off) on arbitrary bytes, as request texts reach them.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "model/tokenizer.h"
#include "model/utf8.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view text(reinterpret_cast<const char*>(data), size);
  (void)ctxembed::IsValidUtf8(text);
  std::vector<std::string> tokens;
  for (const char* kind : {"whitespace", "words_and_punct"}) {
    for (bool lowercase : {false, true}) {
      auto t =
          ctxembed::Tokenizer::Create({.kind = kind, .lowercase = lowercase});
      if (!t.ok()) __builtin_trap();
      t->Tokenize(text, &tokens);
      for (const std::string& token : tokens) {
        if (token.empty()) __builtin_trap();  // never an empty token
      }
    }
  }
  return 0;
}
