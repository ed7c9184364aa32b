#include "inference/model_registry.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "inference/model_versions.h"
#include "model/test_data.h"

namespace ctxembed {
namespace {

using ::testing::HasSubstr;

std::shared_ptr<const Model> Load(const std::string& name) {
  auto model = Model::Load(testing::GoldenDir() + "/models/" + name);
  EXPECT_TRUE(model.ok()) << model.status();
  return *model;
}

TEST(ModelRegistryTest, VersionsByNameAndByNameAtVersion) {
  ModelRegistry registry;
  EXPECT_EQ(registry.GetServable("").status().code(),
            absl::StatusCode::kUnavailable);
  auto a = Load("sg_d8"), b = Load("cbow_d12");
  ASSERT_TRUE(registry.Add({a, nullptr, 1}).ok());
  ASSERT_TRUE(registry.Add({a, nullptr, 3}).ok());
  ASSERT_TRUE(registry.Add({b, nullptr, 0}).ok());
  EXPECT_EQ(registry.Add({a, nullptr, 3}).code(),
            absl::StatusCode::kAlreadyExists);
  // The default model's highest version answers an empty name.
  EXPECT_EQ(registry.GetServable("")->version, 3);
  EXPECT_EQ(registry.GetServable("sg_d8")->version, 3);
  EXPECT_EQ(registry.GetServable("sg_d8@1")->version, 1);
  EXPECT_EQ(registry.GetServable("cbow_d12")->model, b);
  const absl::Status missing = registry.GetServable("sg_d8@2").status();
  EXPECT_EQ(missing.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(missing.message(), HasSubstr("sg_d8@3, sg_d8@1, cbow_d12"));
  EXPECT_EQ(registry.GetServable("sg_d8@x").status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(registry.List().size(), 3u);
  EXPECT_EQ(registry.default_name(), "sg_d8");
}

TEST(ModelRegistryTest, PublishSwapsVersionsAtOnceAndKeepsTheOldUntilUnused) {
  ModelRegistry registry;
  auto a = Load("sg_d8"), b = Load("cbow_d12");
  auto batcher = [] {
    auto made = Batcher::Create(
        {}, [](Batch&) {}, nullptr);
    EXPECT_TRUE(made.ok());
    return std::shared_ptr<Batcher>(std::move(*made));
  };
  ASSERT_TRUE(registry.Add({a, batcher(), 1}).ok());
  ASSERT_TRUE(registry.Add({b, nullptr, 0}).ok());
  // A request's snapshot outlives the swap.
  Servable held = *registry.GetServable("sg_d8");
  EXPECT_EQ(registry.Publish("sg_d8", {{a, batcher(), 2}}), 1);
  EXPECT_EQ(registry.GetServable("sg_d8")->version, 2);
  EXPECT_EQ(held.version, 1);
  ASSERT_EQ(registry.Unloading().size(), 1u);
  EXPECT_EQ(registry.Unloading()[0].version, 1);
  // Held by the request: not handed out for release yet.
  EXPECT_TRUE(registry.TakeUnused().empty());
  held = Servable();
  std::vector<Servable> unused = registry.TakeUnused();
  ASSERT_EQ(unused.size(), 1u);
  EXPECT_EQ(unused[0].version, 1);
  EXPECT_TRUE(registry.Unloading().empty());
  // Publishing what is served retires nothing.
  const Servable current = *registry.GetServable("sg_d8");
  EXPECT_EQ(registry.Publish("sg_d8", {current}), 0);
  // Removing every version removes the name; the next is the default.
  EXPECT_EQ(registry.Publish("sg_d8", {}), 1);
  EXPECT_EQ(registry.default_name(), "cbow_d12");
  EXPECT_EQ(registry.GetServable("sg_d8").status().code(),
            absl::StatusCode::kNotFound);
  // Shutdown still finds the unloading version's batcher.
  EXPECT_EQ(registry.Batchers().size(), 1u);
  // A new name goes last.
  EXPECT_EQ(registry.Publish("sg_d8", {{a, nullptr, 5}}), 0);
  EXPECT_EQ(registry.default_name(), "cbow_d12");
  EXPECT_EQ(registry.GetServable("sg_d8@5")->model, a);
}

class ModelVersionsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("ctxembed_versions_" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  void Touch(const std::filesystem::path& p, const std::string& text = "{}") {
    std::filesystem::create_directories(p.parent_path());
    std::ofstream(p) << text;
  }
  std::filesystem::path dir_;
};

TEST_F(ModelVersionsTest, PlainAndVersionedDirectories) {
  EXPECT_EQ(ListModelVersions(dir_.string(), false).status().code(),
            absl::StatusCode::kNotFound);
  Touch(dir_ / "10" / "config.json");
  Touch(dir_ / "2" / "config.json");
  Touch(dir_ / "3.partial" / "config.json");  // being copied: ignored
  Touch(dir_ / "tmp" / "config.json");
  std::filesystem::create_directories(dir_ / "4");  // no config.json yet
  Touch(dir_ / "5");                                // a file, not a directory
  auto list = ListModelVersions(dir_.string(), false);
  ASSERT_TRUE(list.ok()) << list.status();
  EXPECT_TRUE(list->versioned);
  ASSERT_EQ(list->versions.size(), 2u);
  EXPECT_EQ(list->versions[0].version, 2);
  EXPECT_EQ(list->versions[1].version, 10);
  // A config.json at the top makes it a plain model directory.
  Touch(dir_ / "config.json");
  list = ListModelVersions(dir_.string(), false);
  ASSERT_TRUE(list.ok());
  EXPECT_FALSE(list->versioned);
  ASSERT_EQ(list->versions.size(), 1u);
  EXPECT_EQ(list->versions[0].version, 0);
  // Once versioned, an emptied directory lists no versions (not an error).
  std::filesystem::remove_all(dir_);
  std::filesystem::create_directories(dir_);
  list = ListModelVersions(dir_.string(), true);
  ASSERT_TRUE(list.ok());
  EXPECT_TRUE(list->versions.empty());
}

TEST_F(ModelVersionsTest, FingerprintFollowsTheFiles) {
  Touch(dir_ / "config.json", "{}");
  const std::string before = DirectoryFingerprint(dir_.string());
  EXPECT_EQ(DirectoryFingerprint(dir_.string()), before);
  Touch(dir_ / "config.json", "{\"a\": 1}");
  EXPECT_NE(DirectoryFingerprint(dir_.string()), before);
}

}  // namespace
}  // namespace ctxembed
