#include "inference/request_handler.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>

#include "model/test_data.h"

namespace ctxembed {
namespace {

using ::testing::HasSubstr;

class RequestHandlerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto model = Model::Load(testing::GoldenDir() + "/models/sg_d8");
    ASSERT_TRUE(model.ok()) << model.status();
    ASSERT_TRUE(registry_.Add(*model).ok());
  }
  std::string Error(const absl::Status& s) { return s.ToString(); }

  ModelRegistry registry_;
  RequestHandler handler_{{.max_inputs_per_request = 4}, &registry_};
};

TEST_F(RequestHandlerTest, EmbedReturnsOneVectorPerInputInOrder) {
  v1::EmbedRequest request;
  request.add_inputs("the dog");
  request.add_inputs("");
  request.add_inputs("the man");
  request.set_request_id("r1");
  v1::EmbedResponse response;
  CallStats stats;
  ASSERT_TRUE(handler_.Embed(request, &response, &stats).ok());
  ASSERT_EQ(response.embeddings_size(), 3);
  EXPECT_EQ(response.model(), "sg_d8");
  EXPECT_EQ(response.request_id(), "r1");
  EXPECT_EQ(response.usage().tokens(), 4);
  EXPECT_EQ(stats.tokens, 4);
  for (const auto& e : response.embeddings()) EXPECT_EQ(e.values_size(), 8);
  // The empty input embeds to the zero vector.
  for (float v : response.embeddings(1).values()) EXPECT_EQ(v, 0.0f);
  EXPECT_NE(response.embeddings(0).values(0), response.embeddings(2).values(0));
}

TEST_F(RequestHandlerTest, NormalizeGivesUnitVectors) {
  v1::EmbedRequest request;
  request.add_inputs("the dog bit the man");
  request.set_normalize(true);
  request.set_pooling(v1::POOLING_MEAN);
  v1::EmbedResponse response;
  CallStats stats;
  ASSERT_TRUE(handler_.Embed(request, &response, &stats).ok());
  double norm = 0;
  for (float v : response.embeddings(0).values()) norm += v * v;
  EXPECT_NEAR(norm, 1.0, 1e-5);
}

TEST_F(RequestHandlerTest, BadRequestsNameTheInputAndTheLimit) {
  v1::EmbedResponse response;
  CallStats stats;
  v1::EmbedRequest request;
  EXPECT_THAT(Error(handler_.Embed(request, &response, &stats)),
              HasSubstr("INVALID_ARGUMENT: request has no inputs"));
  for (int i = 0; i < 5; ++i) request.add_inputs("x");
  EXPECT_THAT(Error(handler_.Embed(request, &response, &stats)),
              HasSubstr("request has 5 inputs; max_inputs_per_request is 4"));

  request.Clear();
  request.add_inputs("fine");
  std::string long_text;
  for (int i = 0; i < 65; ++i) long_text += "w ";
  request.add_inputs(long_text);
  EXPECT_THAT(Error(handler_.Embed(request, &response, &stats)),
              HasSubstr("input 1 has 65 tokens; max_tokens of model \"sg_d8\" "
                        "is 64"));
  request.set_truncate(true);
  response.Clear();
  stats = {};
  ASSERT_TRUE(handler_.Embed(request, &response, &stats).ok());
  EXPECT_EQ(response.usage().tokens(), 1 + 64);

  request.set_inputs(0, "ok \xFF bad");
  EXPECT_THAT(Error(handler_.Embed(request, &response, &stats)),
              HasSubstr("input 0 is not valid UTF-8 (byte 3)"));

  request.set_inputs(0, "ok");
  request.set_model("nope");
  EXPECT_THAT(
      Error(handler_.Embed(request, &response, &stats)),
      HasSubstr("NOT_FOUND: model \"nope\" is not loaded; loaded: sg_d8"));

  request.set_model("");
  request.set_pooling(static_cast<v1::Pooling>(42));
  EXPECT_THAT(Error(handler_.Embed(request, &response, &stats)),
              HasSubstr("unknown pooling value 42"));
}

TEST_F(RequestHandlerTest, PoolingLastNeedsTheTopModulesStates) {
  for (const char* name : {"lstm_bi_2l_last", "stack_concat_input"}) {
    auto model = Model::Load(testing::GoldenDir() + "/torch/" + name);
    ASSERT_TRUE(model.ok()) << model.status();
    ASSERT_TRUE(registry_.Add(*model).ok());
  }
  v1::EmbedRequest request;
  request.add_inputs("w1 w2");
  request.set_pooling(v1::POOLING_LAST);
  v1::EmbedResponse response;
  CallStats stats;
  request.set_model("lstm_bi_2l_last");
  EXPECT_TRUE(handler_.Embed(request, &response, &stats).ok());
  request.set_model("sg_d8");
  EXPECT_THAT(Error(handler_.Embed(request, &response, &stats)),
              HasSubstr("pooling LAST needs a recurrent encoder"));
  // A top module with concat_input has token vectors larger than its
  // final states.
  request.set_model("stack_concat_input");
  EXPECT_THAT(Error(handler_.Embed(request, &response, &stats)),
              HasSubstr("whose top module does not concatenate its input; "
                        "model \"stack_concat_input\" is "
                        "bilstmx2+input+gru+input"));
  request.set_pooling(v1::POOLING_MEAN);
  EXPECT_TRUE(handler_.Embed(request, &response, &stats).ok());
}

TEST_F(RequestHandlerTest, NoModelIsUnavailable) {
  ModelRegistry empty;
  RequestHandler handler({}, &empty);
  v1::EmbedRequest request;
  request.add_inputs("x");
  v1::EmbedResponse response;
  CallStats stats;
  EXPECT_EQ(handler.Embed(request, &response, &stats).code(),
            absl::StatusCode::kUnavailable);
}

TEST_F(RequestHandlerTest, EmbedTokensMatchesTheWordVectors) {
  v1::EmbedRequest request;
  request.add_inputs("the  café\tthe");
  v1::EmbedTokensResponse response;
  CallStats stats;
  ASSERT_TRUE(handler_.EmbedTokens(request, &response, &stats).ok());
  ASSERT_EQ(response.results_size(), 1);
  const auto& r = response.results(0);
  ASSERT_EQ(r.tokens_size(), 3);
  EXPECT_EQ(r.tokens(1), "café");
  ASSERT_EQ(r.vectors_size(), 3);
  auto model = registry_.Get("");
  float want[8];
  (*model)->word_vectors().Lookup("café", want);
  for (int j = 0; j < 8; ++j) EXPECT_EQ(r.vectors(1).values(j), want[j]);
}

TEST_F(RequestHandlerTest, ScoreIsTheCosine) {
  v1::ScoreRequest request;
  auto* same = request.add_pairs();
  same->set_a("the dog bit the man");
  same->set_b(
      "the man bit the dog");  // a bag of vectors cannot tell them apart
  auto* empty = request.add_pairs();
  empty->set_a("the dog");
  empty->set_b("");
  v1::ScoreResponse response;
  CallStats stats;
  ASSERT_TRUE(handler_.Score(request, &response, &stats).ok());
  ASSERT_EQ(response.scores_size(), 2);
  EXPECT_NEAR(response.scores(0), 1.0f, 1e-6);
  EXPECT_EQ(response.scores(1), 0.0f);
  request.mutable_pairs(1)->set_b("\xC3");
  EXPECT_THAT(Error(handler_.Score(request, &response, &stats)),
              HasSubstr("pair 1 text b is not valid UTF-8"));
}

TEST_F(RequestHandlerTest, TokenizeAndListModels) {
  v1::TokenizeRequest request;
  request.add_inputs(" a  b\tc ");
  v1::TokenizeResponse response;
  CallStats stats;
  ASSERT_TRUE(handler_.Tokenize(request, &response, &stats).ok());
  ASSERT_EQ(response.results(0).tokens_size(), 3);
  EXPECT_EQ(response.results(0).tokens(2), "c");

  v1::ListModelsResponse models;
  ASSERT_TRUE(handler_.ListModels({}, &models).ok());
  ASSERT_EQ(models.models_size(), 1);
  EXPECT_EQ(models.models(0).name(), "sg_d8");
  EXPECT_EQ(models.models(0).dimension(), 8);
  EXPECT_EQ(models.models(0).architecture(), "bag_of_vectors");
  EXPECT_EQ(models.models(0).max_tokens(), 64);
  EXPECT_EQ(models.models(0).pooling(), "fasttext");
  EXPECT_TRUE(models.models(0).is_default());
}

}  // namespace
}  // namespace ctxembed
