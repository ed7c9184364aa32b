#include "server/request_parser.h"

#include <gmock/gmock.h>
#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <gtest/gtest.h>

#include "ctxembed/v1/embedder.pb.h"

namespace ctxembed {
namespace {

using ::testing::HasSubstr;

// Writes length-delimited field `number` with raw bytes, as a client that
// does not check UTF-8 would.
void WriteBytesField(int number, const std::string& bytes, std::string* out) {
  google::protobuf::io::StringOutputStream stream(out);
  google::protobuf::io::CodedOutputStream coded(&stream);
  coded.WriteTag((number << 3) | 2);
  coded.WriteVarint32(static_cast<uint32_t>(bytes.size()));
  coded.WriteRaw(bytes.data(), static_cast<int>(bytes.size()));
}

TEST(RequestParserTest, ParsesValidMessages) {
  v1::EmbedRequest in;
  in.add_inputs("hello");
  in.set_model("m");
  v1::EmbedRequest out;
  ASSERT_TRUE(ParseMessage(in.SerializeAsString(), &out).ok());
  EXPECT_EQ(out.inputs(0), "hello");
  EXPECT_EQ(out.model(), "m");
}

TEST(RequestParserTest, NamesTheInputThatIsNotUtf8) {
  std::string bytes;
  WriteBytesField(1, "fine", &bytes);
  WriteBytesField(1, "also fine", &bytes);
  WriteBytesField(2, "model", &bytes);
  WriteBytesField(1, "bad \xC3\x28", &bytes);
  v1::EmbedRequest out;
  absl::Status s = ParseMessage(bytes, &out);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "input 2 is not valid UTF-8 (byte 4)");
}

TEST(RequestParserTest, NamesNestedFields) {
  v1::Pair good;
  good.set_a("a");
  good.set_b("b");
  std::string bad_pair;
  WriteBytesField(1, "ok", &bad_pair);
  WriteBytesField(2, "\xFF", &bad_pair);
  std::string bytes;
  WriteBytesField(1, good.SerializeAsString(), &bytes);
  WriteBytesField(1, bad_pair, &bytes);
  v1::ScoreRequest out;
  absl::Status s = ParseMessage(bytes, &out);
  EXPECT_EQ(s.message(), "field pairs[1].b is not valid UTF-8 (byte 0)");
}

TEST(RequestParserTest, GarbageIsInvalidArgument) {
  v1::EmbedRequest out;
  absl::Status s = ParseMessage("\xFF\xFF\xFF", &out);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()),
              HasSubstr("request is not a valid ctxembed.v1.EmbedRequest"));
}

TEST(RequestParserTest, ByteBufferRoundTrip) {
  v1::EmbedResponse response;
  response.add_embeddings()->add_values(1.5f);
  grpc::ByteBuffer buffer;
  SerializeResponse(response, &buffer);
  v1::EmbedResponse back;
  ASSERT_TRUE(ParseRequest(buffer, &back).ok());
  EXPECT_EQ(back.embeddings(0).values(0), 1.5f);
}

}  // namespace
}  // namespace ctxembed
