#include "server/tls.h"

#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_credentials_options.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "model/status_macros.h"

namespace ctxembed {
namespace {

absl::StatusOr<std::string> ReadFile(const char* flag,
                                     const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--", flag, "=", path, ": cannot read: ", std::strerror(errno)));
  }
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

struct BioDeleter {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct X509Deleter {
  void operator()(X509* x) const { X509_free(x); }
};
struct KeyDeleter {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
using Bio = std::unique_ptr<BIO, BioDeleter>;

Bio MemoryBio(const std::string& text) {
  return Bio(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
}

absl::StatusOr<std::unique_ptr<X509, X509Deleter>> FirstCertificate(
    const char* flag, const std::string& path, const std::string& pem) {
  Bio bio = MemoryBio(pem);
  std::unique_ptr<X509, X509Deleter> cert(
      PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  if (cert == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", flag, "=", path, ": no PEM certificate in it"));
  }
  return cert;
}

}  // namespace

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> ServerCredentials(
    const TlsOptions& o) {
  if (o.cert_file.empty()) {
    if (!o.key_file.empty() || !o.client_ca_file.empty()) {
      return absl::InvalidArgumentError(
          "--tls_key_file and --tls_client_ca_file need --tls_cert_file");
    }
    return grpc::InsecureServerCredentials();
  }
  if (o.key_file.empty()) {
    return absl::InvalidArgumentError("--tls_cert_file needs --tls_key_file");
  }
  if (o.refresh_interval_s < 1) {
    return absl::InvalidArgumentError(
        "--tls_refresh_interval_s must be at least 1");
  }
  CTXEMBED_ASSIGN_OR_RETURN(const std::string cert_pem,
                            ReadFile("tls_cert_file", o.cert_file));
  CTXEMBED_ASSIGN_OR_RETURN(const std::string key_pem,
                            ReadFile("tls_key_file", o.key_file));
  CTXEMBED_ASSIGN_OR_RETURN(
      auto cert, FirstCertificate("tls_cert_file", o.cert_file, cert_pem));
  Bio key_bio = MemoryBio(key_pem);
  std::unique_ptr<EVP_PKEY, KeyDeleter> key(
      PEM_read_bio_PrivateKey(key_bio.get(), nullptr, nullptr, nullptr));
  if (key == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--tls_key_file=", o.key_file, ": no PEM private key in it"));
  }
  if (X509_check_private_key(cert.get(), key.get()) != 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--tls_key_file=", o.key_file,
        " does not match the certificate in --tls_cert_file=", o.cert_file));
  }
  if (!o.client_ca_file.empty()) {
    CTXEMBED_ASSIGN_OR_RETURN(const std::string ca_pem,
                              ReadFile("tls_client_ca_file", o.client_ca_file));
    CTXEMBED_RETURN_IF_ERROR(
        FirstCertificate("tls_client_ca_file", o.client_ca_file, ca_pem)
            .status());
  }
  auto provider =
      std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
          o.key_file, o.cert_file, o.client_ca_file, o.refresh_interval_s);
  grpc::experimental::TlsServerCredentialsOptions options(provider);
  options.watch_identity_key_cert_pairs();
  if (!o.client_ca_file.empty()) {
    options.watch_root_certs();
    options.set_cert_request_type(
        GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  } else {
    options.set_cert_request_type(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  }
  return grpc::experimental::TlsServerCredentials(options);
}

}  // namespace ctxembed
