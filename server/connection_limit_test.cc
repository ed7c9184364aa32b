#include "server/connection_limit.h"

#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace ctxembed {
namespace {

TEST(ConnectionLimiterTest, CountsPeersNotCalls) {
  ConnectionLimiter limiter(2);
  EXPECT_TRUE(limiter.Enter("ipv4:127.0.0.1:1000"));
  EXPECT_TRUE(limiter.Enter("ipv4:127.0.0.1:1000"));  // same connection
  EXPECT_TRUE(limiter.Enter("ipv4:127.0.0.1:1001"));
  EXPECT_EQ(limiter.connections(), 2);
  EXPECT_FALSE(limiter.Enter("ipv4:127.0.0.1:1002"));
  EXPECT_FALSE(limiter.Holds("ipv4:127.0.0.1:1002"));
  EXPECT_TRUE(limiter.Enter("ipv4:127.0.0.1:1001"));  // held: still admitted

  limiter.Leave("ipv4:127.0.0.1:1000");
  EXPECT_TRUE(limiter.Holds("ipv4:127.0.0.1:1000"));  // one call left
  EXPECT_FALSE(limiter.Enter("ipv4:127.0.0.1:1002"));
  limiter.Leave("ipv4:127.0.0.1:1000");
  EXPECT_FALSE(limiter.Holds("ipv4:127.0.0.1:1000"));
  EXPECT_TRUE(limiter.Enter("ipv4:127.0.0.1:1002"));
  EXPECT_EQ(limiter.connections(), 2);
}

TEST(ConnectionLimiterTest, ZeroMeansNoBound) {
  ConnectionLimiter limiter(0);
  for (int i = 0; i < 100; ++i) {
    EXPECT_TRUE(limiter.Enter(absl::StrCat("ipv6:[::1]:", i)));
  }
  EXPECT_EQ(limiter.connections(), 100);
}

// Calls from many threads begin and end at once; every admitted call
// leaves, and the bound holds throughout (run under TSan by CI).
TEST(ConnectionLimiterTest, ConcurrentCallsNeverExceedTheBound) {
  ConnectionLimiter limiter(3);
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      const std::string peer = absl::StrCat("ipv4:10.0.0.", t, ":5000");
      for (int i = 0; i < 2000; ++i) {
        if (limiter.Enter(peer)) {
          EXPECT_LE(limiter.connections(), 3);
          EXPECT_TRUE(limiter.Holds(peer));
          limiter.Leave(peer);
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(limiter.connections(), 0);
}

}  // namespace
}  // namespace ctxembed
