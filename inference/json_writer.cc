#include "inference/json_writer.h"

#include <charconv>
#include <cstdio>

namespace ctxembed {

void AppendJsonString(absl::string_view s, std::string* out) {
  out->push_back('"');
  for (char c : s) {
    switch (c) {
      case '"':
        out->append("\\\"");
        break;
      case '\\':
        out->append("\\\\");
        break;
      case '\n':
        out->append("\\n");
        break;
      case '\r':
        out->append("\\r");
        break;
      case '\t':
        out->append("\\t");
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out->append(buf);
        } else {
          out->push_back(c);
        }
    }
  }
  out->push_back('"');
}

void AppendJsonFloat(float v, std::string* out) {
  char buf[32];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  out->append(buf, r.ptr);
}

void AppendJsonFloats(const v1::Vector& v, std::string* out) {
  out->push_back('[');
  for (int i = 0; i < v.values_size(); ++i) {
    if (i > 0) out->push_back(',');
    AppendJsonFloat(v.values(i), out);
  }
  out->push_back(']');
}

}  // namespace ctxembed
