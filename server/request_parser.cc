#include "server/request_parser.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/unknown_field_set.h>

#include <optional>
#include <vector>

#include "absl/strings/str_cat.h"
#include "model/utf8.h"

namespace ctxembed {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::UnknownField;
using google::protobuf::UnknownFieldSet;

// Walks a schema-less parse of the bytes with the message's descriptor and
// returns a description of the first string field that is not UTF-8.
std::optional<std::string> FindBadString(const UnknownFieldSet& fields,
                                         const Descriptor& type,
                                         const std::string& prefix) {
  std::vector<int> seen(type.field_count(), 0);
  for (int i = 0; i < fields.field_count(); ++i) {
    const UnknownField& f = fields.field(i);
    const FieldDescriptor* fd = type.FindFieldByNumber(f.number());
    if (fd == nullptr || f.type() != UnknownField::TYPE_LENGTH_DELIMITED) {
      continue;
    }
    const int index = seen[fd->index()]++;
    const std::string path =
        fd->is_repeated() ? absl::StrCat(prefix, fd->name(), "[", index, "]")
                          : absl::StrCat(prefix, fd->name());
    if (fd->type() == FieldDescriptor::TYPE_STRING) {
      const size_t bad = FindInvalidUtf8(f.length_delimited());
      if (bad == absl::string_view::npos) continue;
      if (prefix.empty() && fd->name() == "inputs") {
        return absl::StrCat("input ", index, " is not valid UTF-8 (byte ", bad,
                            ")");
      }
      return absl::StrCat("field ", path, " is not valid UTF-8 (byte ", bad,
                          ")");
    }
    if (fd->type() == FieldDescriptor::TYPE_MESSAGE) {
      UnknownFieldSet nested;
      if (nested.ParseFromString(f.length_delimited())) {
        auto found = FindBadString(nested, *fd->message_type(), path + ".");
        if (found) return found;
      }
    }
  }
  return std::nullopt;
}

}  // namespace

absl::Status ParseMessage(absl::string_view bytes,
                          google::protobuf::Message* message) {
  if (message->ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return absl::OkStatus();
  }
  // The cold path: find out why, for the error message.
  UnknownFieldSet fields;
  if (fields.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    auto bad = FindBadString(fields, *message->GetDescriptor(), "");
    if (bad) return absl::InvalidArgumentError(*bad);
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "request is not a valid ", message->GetDescriptor()->full_name(), " (",
      bytes.size(), " bytes)"));
}

absl::Status ParseRequest(const grpc::ByteBuffer& buffer,
                          google::protobuf::Message* message) {
  std::vector<grpc::Slice> slices;
  if (!buffer.Dump(&slices).ok()) {
    return absl::InvalidArgumentError("cannot read the request bytes");
  }
  if (slices.size() == 1) {
    return ParseMessage(
        absl::string_view(reinterpret_cast<const char*>(slices[0].begin()),
                          slices[0].size()),
        message);
  }
  std::string joined;
  joined.reserve(buffer.Length());
  for (const grpc::Slice& s : slices) {
    joined.append(reinterpret_cast<const char*>(s.begin()), s.size());
  }
  return ParseMessage(joined, message);
}

void SerializeResponse(const google::protobuf::Message& message,
                       grpc::ByteBuffer* buffer) {
  std::string bytes = message.SerializeAsString();
  grpc::Slice slice(std::move(bytes));
  *buffer = grpc::ByteBuffer(&slice, 1);
}

}  // namespace ctxembed
