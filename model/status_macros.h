// Early-return helpers for absl::Status. Debian's abseil (20220623) ships no
// ABSL_RETURN_IF_ERROR, so ctxembed carries these two.
#ifndef CTXEMBED_MODEL_STATUS_MACROS_H_
#define CTXEMBED_MODEL_STATUS_MACROS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"

// Returns from the calling function if `expr` (an absl::Status) is not OK.
#define CTXEMBED_RETURN_IF_ERROR(expr)         \
  do {                                         \
    ::absl::Status _ctx_status = (expr);       \
    if (!_ctx_status.ok()) return _ctx_status; \
  } while (0)

#define CTXEMBED_CONCAT_INNER(a, b) a##b
#define CTXEMBED_CONCAT(a, b) CTXEMBED_CONCAT_INNER(a, b)

// `lhs` = value of `rexpr` (an absl::StatusOr<T>), or returns its status.
#define CTXEMBED_ASSIGN_OR_RETURN(lhs, rexpr)                              \
  CTXEMBED_ASSIGN_OR_RETURN_IMPL(CTXEMBED_CONCAT(_ctx_or_, __LINE__), lhs, \
                                 rexpr)

#define CTXEMBED_ASSIGN_OR_RETURN_IMPL(tmp, lhs, rexpr) \
  auto tmp = (rexpr);                                   \
  if (!tmp.ok()) return tmp.status();                   \
  lhs = std::move(tmp).value()

#endif  // CTXEMBED_MODEL_STATUS_MACROS_H_
