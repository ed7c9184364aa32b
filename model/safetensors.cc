#include "model/safetensors.h"

#include <algorithm>
#include <cstring>
#include <nlohmann/json.hpp>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "model/status_macros.h"

namespace ctxembed {
namespace {

using Json = nlohmann::json;

constexpr uint64_t kMaxHeaderBytes = 100u << 20;

size_t DTypeSize(SafeTensors::DType t) {
  return t == SafeTensors::DType::kF32 ? 4 : 2;
}

// IEEE half -> float, exact.
float HalfToFloat(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1F;
  uint32_t mant = h & 0x3FF;
  uint32_t bits;
  if (exp == 0x1F) {
    bits = sign | 0x7F800000u | (mant << 13);  // inf / nan
  } else if (exp != 0) {
    bits = sign | ((exp + 112) << 23) | (mant << 13);
  } else if (mant == 0) {
    bits = sign;  // +-0
  } else {        // subnormal half: normalise
    exp = 113;
    while ((mant & 0x400) == 0) {
      mant <<= 1;
      --exp;
    }
    bits = sign | (exp << 23) | ((mant & 0x3FF) << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

float BFloat16ToFloat(uint16_t b) {
  const uint32_t bits = static_cast<uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

absl::Status Error(const std::string& name, absl::string_view message) {
  return absl::InvalidArgumentError(absl::StrCat(name, ": ", message));
}

absl::StatusOr<SafeTensors::TensorInfo> ParseEntry(const std::string& file,
                                                   const std::string& tensor,
                                                   const Json& entry,
                                                   size_t data_size) {
  const std::string where = absl::StrCat("tensor ", tensor);
  if (!entry.is_object() || !entry.contains("dtype") ||
      !entry.contains("shape") || !entry.contains("data_offsets")) {
    return Error(file, absl::StrCat(where,
                                    ": needs dtype, shape and "
                                    "data_offsets"));
  }
  SafeTensors::TensorInfo info;
  const Json& dtype = entry["dtype"];
  if (dtype == "F32") {
    info.dtype = SafeTensors::DType::kF32;
  } else if (dtype == "F16") {
    info.dtype = SafeTensors::DType::kF16;
  } else if (dtype == "BF16") {
    info.dtype = SafeTensors::DType::kBF16;
  } else {
    return Error(file, absl::StrCat(where, ": dtype ", dtype.dump(),
                                    " is not supported (F32, F16, BF16)"));
  }
  uint64_t elements = 1;
  const Json& shape = entry["shape"];
  if (!shape.is_array()) return Error(file, where + ": shape is not a list");
  for (const Json& d : shape) {
    if (!d.is_number_unsigned() || d.get<uint64_t>() > (1ull << 40)) {
      return Error(file, absl::StrCat(where, ": bad dimension ", d.dump()));
    }
    info.shape.push_back(d.get<int64_t>());
    // Checked before multiplying: [2^40, 2^40] would wrap to 0 elements.
    const uint64_t dim = d.get<uint64_t>();
    if (dim != 0 && elements > (1ull << 40) / dim) {
      return Error(file,
                   absl::StrCat(where, ": shape ", ShapeString(info.shape),
                                " has more than 2^40 elements"));
    }
    elements *= dim;
  }
  const Json& offsets = entry["data_offsets"];
  if (!offsets.is_array() || offsets.size() != 2 ||
      !offsets[0].is_number_unsigned() || !offsets[1].is_number_unsigned()) {
    return Error(file, where + ": data_offsets must be [begin, end]");
  }
  info.begin = offsets[0].get<uint64_t>();
  info.end = offsets[1].get<uint64_t>();
  if (info.begin > info.end || info.end > data_size) {
    return Error(file, absl::StrCat(where, ": data_offsets [", info.begin, ", ",
                                    info.end, "] are outside the ", data_size,
                                    " data bytes"));
  }
  if (info.end - info.begin != elements * DTypeSize(info.dtype)) {
    return Error(file, absl::StrCat(where, ": shape ", ShapeString(info.shape),
                                    " needs ", elements * DTypeSize(info.dtype),
                                    " bytes; data_offsets span ",
                                    info.end - info.begin));
  }
  return info;
}

// Parses the header JSON, refusing duplicate top-level keys (which
// nlohmann would silently merge).
absl::StatusOr<Json> ParseHeaderJson(absl::string_view text,
                                     const std::string& file) {
  absl::flat_hash_set<std::string> seen;
  std::string duplicate;
  auto callback = [&](int depth, Json::parse_event_t event, Json& parsed) {
    if (depth == 1 && event == Json::parse_event_t::key &&
        !seen.insert(parsed.get<std::string>()).second && duplicate.empty()) {
      duplicate = parsed.get<std::string>();
    }
    return true;
  };
  Json header;
  try {
    header = Json::parse(text.begin(), text.end(), callback);
  } catch (const Json::exception& e) {
    return Error(file, absl::StrCat("header is not valid JSON: ", e.what()));
  }
  if (!duplicate.empty()) {
    return Error(file, absl::StrCat("tensor ", duplicate, " appears twice"));
  }
  if (!header.is_object()) return Error(file, "header is not a JSON object");
  return header;
}

// The spec: the data section is entirely indexed, without holes or overlaps.
absl::Status CheckContiguous(
    const std::string& file,
    const absl::flat_hash_map<std::string, SafeTensors::TensorInfo>& tensors,
    size_t data_size) {
  std::vector<std::pair<size_t, std::string>> spans;
  for (const auto& [name, info] : tensors) spans.emplace_back(info.begin, name);
  std::sort(spans.begin(), spans.end());
  size_t expected = 0;
  for (const auto& [begin, name] : spans) {
    if (begin != expected) {
      return Error(file,
                   absl::StrCat("tensor ", name, " starts at data byte ", begin,
                                "; the previous tensor ends at ", expected,
                                " (holes and overlaps are "
                                "not allowed)"));
    }
    expected = tensors.at(name).end;
  }
  if (expected != data_size) {
    return Error(file, absl::StrCat("tensors cover ", expected, " of the ",
                                    data_size, " data bytes"));
  }
  return absl::OkStatus();
}

}  // namespace

std::string ShapeString(const std::vector<int64_t>& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

absl::StatusOr<std::unique_ptr<SafeTensors>> SafeTensors::Open(
    const std::string& path) {
  CTXEMBED_ASSIGN_OR_RETURN(auto file, MappedFile::Open(path));
  CTXEMBED_ASSIGN_OR_RETURN(auto st, Parse(file->data(), path));
  st->file_ = std::move(file);
  return st;
}

absl::StatusOr<std::unique_ptr<SafeTensors>> SafeTensors::Parse(
    absl::string_view data, const std::string& name) {
  uint64_t header_size = 0;
  if (data.size() < 8) {
    return absl::DataLossError(
        absl::StrCat(name, ": ", data.size(),
                     " bytes; a safetensors file starts with an "
                     "8-byte header length"));
  }
  std::memcpy(&header_size, data.data(), 8);
  if (header_size > kMaxHeaderBytes || header_size > data.size() - 8) {
    return absl::DataLossError(absl::StrCat(
        name, ": header length ", header_size, " exceeds the file (",
        data.size(), " bytes) or the 100 MB limit"));
  }
  absl::string_view text = data.substr(8, header_size);
  if (text.empty() || text[0] != '{') {
    return Error(name, "header does not start with '{'");
  }
  CTXEMBED_ASSIGN_OR_RETURN(Json header, ParseHeaderJson(text, name));
  std::unique_ptr<SafeTensors> st(new SafeTensors());
  st->name_ = name;
  st->data_ = data.substr(8 + header_size);
  for (const auto& item : header.items()) {
    if (item.key() == "__metadata__") continue;
    CTXEMBED_ASSIGN_OR_RETURN(
        TensorInfo info,
        ParseEntry(name, item.key(), item.value(), st->data_.size()));
    st->tensors_.emplace(item.key(), std::move(info));
  }
  CTXEMBED_RETURN_IF_ERROR(
      CheckContiguous(name, st->tensors_, st->data_.size()));
  return st;
}

std::vector<std::string> SafeTensors::Names() const {
  std::vector<std::string> names;
  for (const auto& [name, info] : tensors_) names.push_back(name);
  std::sort(names.begin(), names.end());
  return names;
}

absl::StatusOr<const SafeTensors::TensorInfo*> SafeTensors::Info(
    absl::string_view tensor) const {
  auto it = tensors_.find(tensor);
  if (it == tensors_.end()) {
    return absl::NotFoundError(
        absl::StrCat(name_, ": no tensor named ", tensor));
  }
  return &it->second;
}

absl::StatusOr<std::vector<float>> SafeTensors::ReadFloats(
    absl::string_view tensor, const std::vector<int64_t>& shape) const {
  CTXEMBED_ASSIGN_OR_RETURN(const TensorInfo* info, Info(tensor));
  if (info->shape != shape) {
    return absl::InvalidArgumentError(
        absl::StrCat(name_, ": tensor ", tensor, ": expected shape ",
                     ShapeString(shape), ", got ", ShapeString(info->shape)));
  }
  const size_t n = (info->end - info->begin) / DTypeSize(info->dtype);
  std::vector<float> out(n);
  const char* p = data_.data() + info->begin;
  if (info->dtype == DType::kF32) {
    if (n > 0) std::memcpy(out.data(), p, n * 4);
    return out;
  }
  for (size_t i = 0; i < n; ++i) {
    uint16_t v;
    std::memcpy(&v, p + 2 * i, 2);
    out[i] = info->dtype == DType::kF16 ? HalfToFloat(v) : BFloat16ToFloat(v);
  }
  return out;
}

absl::StatusOr<RowMatrixXf> SafeTensors::ReadMatrix(absl::string_view tensor,
                                                    int64_t rows,
                                                    int64_t cols) const {
  CTXEMBED_ASSIGN_OR_RETURN(std::vector<float> v,
                            ReadFloats(tensor, {rows, cols}));
  return RowMatrixXf(Eigen::Map<RowMatrixXf>(v.data(), rows, cols));
}

absl::StatusOr<Eigen::VectorXf> SafeTensors::ReadVector(
    absl::string_view tensor, int64_t size) const {
  CTXEMBED_ASSIGN_OR_RETURN(std::vector<float> v, ReadFloats(tensor, {size}));
  return Eigen::VectorXf(Eigen::Map<Eigen::VectorXf>(v.data(), size));
}

}  // namespace ctxembed
