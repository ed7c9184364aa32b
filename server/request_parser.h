// Parses request bytes into protobuf messages with errors a client can act on.
#ifndef CTXEMBED_SERVER_REQUEST_PARSER_H_
#define CTXEMBED_SERVER_REQUEST_PARSER_H_

#include <google/protobuf/message.h>
#include <grpcpp/support/byte_buffer.h>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace ctxembed {

// Parses `bytes` (a serialized message) into *message.
//
// gRPC's generated handlers answer a request that does not parse with a bare
// UNIMPLEMENTED, and proto3 refuses string fields that are not UTF-8 at
// parse time, so the server reads raw bytes and parses here instead. On
// failure returns INVALID_ARGUMENT naming the first string field that is not
// valid UTF-8 ("input 3 is not valid UTF-8 (byte 5)" for
// EmbedRequest.inputs[3], "field pairs[1].b ..." elsewhere), or saying the
// bytes are not a valid message of that type. Thread-safe.
absl::Status ParseMessage(absl::string_view bytes,
                          google::protobuf::Message* message);

// As ParseMessage, from a gRPC byte buffer.
absl::Status ParseRequest(const grpc::ByteBuffer& buffer,
                          google::protobuf::Message* message);

// Serializes `message` into *buffer.
void SerializeResponse(const google::protobuf::Message& message,
                       grpc::ByteBuffer* buffer);

}  // namespace ctxembed

#endif  // CTXEMBED_SERVER_REQUEST_PARSER_H_
