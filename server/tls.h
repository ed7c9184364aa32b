// TLS and mutual TLS for the gRPC port: certificates read from PEM files
// and re-read when the files change (cert-manager rotates them in place),
// through gRPC's file-watcher certificate provider.
#ifndef CTXEMBED_SERVER_TLS_H_
#define CTXEMBED_SERVER_TLS_H_

#include <grpcpp/security/server_credentials.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace ctxembed {

struct TlsOptions {
  std::string cert_file;        // PEM certificate chain; "" = plaintext
  std::string key_file;         // PEM private key of its first certificate
  std::string client_ca_file;   // PEM CA bundle: require client certificates
  int refresh_interval_s = 10;  // how often the files are looked at
};

// Plaintext credentials if no file is named; else TLS (mTLS with a client
// CA). The files are checked first so that startup fails with one line:
// INVALID_ARGUMENT naming the flag and file (unreadable, no PEM certificate
// or key in it, a key that does not match the certificate, a key or client
// CA without a certificate).
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> ServerCredentials(
    const TlsOptions& options);

}  // namespace ctxembed

#endif  // CTXEMBED_SERVER_TLS_H_
