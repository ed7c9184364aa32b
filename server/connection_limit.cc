#include "server/connection_limit.h"

#include <grpcpp/server_context.h>

#include <utility>

namespace ctxembed {

bool ConnectionLimiter::Enter(const std::string& peer) {
  MutexLock lock(&mu_);
  auto it = calls_.find(peer);
  if (it != calls_.end()) {
    ++it->second;
    return true;
  }
  if (max_connections_ > 0 &&
      static_cast<int>(calls_.size()) >= max_connections_) {
    return false;
  }
  calls_.emplace(peer, 1);
  return true;
}

void ConnectionLimiter::Leave(const std::string& peer) {
  MutexLock lock(&mu_);
  auto it = calls_.find(peer);
  if (it != calls_.end() && --it->second == 0) calls_.erase(it);
}

bool ConnectionLimiter::Holds(const std::string& peer) const {
  MutexLock lock(&mu_);
  return calls_.contains(peer);
}

int ConnectionLimiter::connections() const {
  MutexLock lock(&mu_);
  return static_cast<int>(calls_.size());
}

namespace {

using grpc::experimental::InterceptionHookPoints;

// Holds one call's place in the limiter from its initial metadata (before
// the handler runs) until the call is destroyed.
class ConnectionLimitInterceptor : public grpc::experimental::Interceptor {
 public:
  ConnectionLimitInterceptor(ConnectionLimiter* limiter,
                             grpc::ServerContextBase* context)
      : limiter_(limiter), context_(context) {}
  ~ConnectionLimitInterceptor() override {
    if (entered_) limiter_->Leave(peer_);
  }

  void Intercept(
      grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            InterceptionHookPoints::POST_RECV_INITIAL_METADATA) &&
        !entered_) {
      peer_ = context_->peer();
      entered_ = limiter_->Enter(peer_);
    }
    methods->Proceed();
  }

 private:
  ConnectionLimiter* const limiter_;
  grpc::ServerContextBase* const context_;
  std::string peer_;
  bool entered_ = false;
};

class ConnectionLimitFactory
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  ConnectionLimitFactory(ConnectionLimiter* limiter, std::string service)
      : limiter_(limiter), prefix_("/" + std::move(service) + "/") {}

  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    const absl::string_view method = info->method();
    if (method.substr(0, prefix_.size()) != prefix_) return nullptr;
    return new ConnectionLimitInterceptor(limiter_, info->server_context());
  }

 private:
  ConnectionLimiter* const limiter_;
  const std::string prefix_;
};

}  // namespace

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
ConnectionLimitInterceptors(ConnectionLimiter* limiter, std::string service) {
  return std::make_unique<ConnectionLimitFactory>(limiter, std::move(service));
}

}  // namespace ctxembed
