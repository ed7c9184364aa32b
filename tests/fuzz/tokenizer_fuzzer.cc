// libFuzzer target: the UTF-8 check and the tokenizers on arbitrary bytes,
// as request texts reach them: whitespace and words_and_punct (lower-casing
// on and off), and BERT's (normalization by ICU, WordPiece, truncation on
// either side).
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "model/bert_tokenizer.h"
#include "model/tokenizer.h"
#include "model/utf8.h"

namespace {

// A small vocabulary (ASCII, continuations, accented and CJK entries), in a
// file written once per process.
const ctxembed::BertTokenizer& Bert() {
  static const ctxembed::BertTokenizer* bert = [] {
    char path[] = "/tmp/ctxembed_fuzz_vocabXXXXXX";
    const int fd = mkstemp(path);
    if (fd < 0) __builtin_trap();
    std::string vocab = "[PAD]\n[UNK]\n[CLS]\n[SEP]\n";
    for (char c = '!'; c <= '~'; ++c) {
      vocab += std::string(1, c) + "\n##" + std::string(1, c) + "\n";
    }
    vocab += "the\n##ing\nun\n##able\ncafe\nοδος\n你\n好\n##σ\n";
    if (write(fd, vocab.data(), vocab.size()) !=
        static_cast<ssize_t>(vocab.size())) {
      __builtin_trap();
    }
    close(fd);
    auto t = ctxembed::BertTokenizer::Create(path, {});
    std::remove(path);
    if (!t.ok()) __builtin_trap();
    return t->release();
  }();
  return *bert;
}

}  // namespace

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
  const ctxembed::BertTokenizer& bert = Bert();
  const size_t max_tokens = size == 0 ? 2 : 2 + data[0] % 16;
  for (bool keep_last : {false, true}) {
    const size_t count = bert.Tokenize(text, &tokens, max_tokens, keep_last);
    if (tokens.size() < 2 || tokens.size() > max_tokens ||
        tokens.size() > count || tokens.front() != "[CLS]" ||
        tokens.back() != "[SEP]") {
      __builtin_trap();
    }
    for (const std::string& token : tokens) {
      if (bert.Id(token) < 0) __builtin_trap();  // only vocabulary entries
    }
  }
  (void)bert.Normalize(text);
  return 0;
}
