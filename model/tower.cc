#include "model/tower.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "model/status_macros.h"
#include "model/table_vectors.h"

namespace ctxembed {
namespace {

std::string ResolvePath(const std::string& dir, const std::string& file) {
  return !file.empty() && file[0] == '/' ? file : absl::StrCat(dir, "/", file);
}

absl::StatusOr<std::unique_ptr<const WordVectors>> LoadEmbedding(
    const EmbeddingConfig& e, const SafeTensors* weights,
    const std::string& dir) {
  if (e.kind == EmbeddingKind::kFastText)
    return LoadWordVectors(ResolvePath(dir, e.file));
  CTXEMBED_ASSIGN_OR_RETURN(
      auto table, TableVectors::Create(*weights, e.tensor,
                                       ResolvePath(dir, e.vocab), e.unk_token));
  return std::unique_ptr<const WordVectors>(std::move(table));
}

std::string ModuleName(const RecurrentConfig& m) {
  std::string name =
      absl::StrCat(m.bidirectional ? "bi" : "", RecurrentKindName(m.kind));
  if (m.num_layers > 1) absl::StrAppend(&name, "x", m.num_layers);
  if (m.concat_input) absl::StrAppend(&name, "+input");
  return name;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Tower>> Tower::Create(
    const std::string& name, const TowerConfig& config,
    const SafeTensors* weights, const std::string& model_dir) {
  std::unique_ptr<Tower> t(new Tower());
  t->name_ = name;
  t->config_ = config;
  CTXEMBED_ASSIGN_OR_RETURN(
      t->vectors_, LoadEmbedding(config.embedding, weights, model_dir));
  int dim = t->vectors_->dim();
  std::vector<std::string> parts;
  for (size_t i = 0; i < config.encoder.size(); ++i) {
    const RecurrentConfig& m = config.encoder[i];
    if (m.input_size != dim) {
      return absl::InvalidArgumentError(absl::StrCat(
          "tower ", name, ": encoder[", i, "] (", m.prefix, ") has input_size ",
          m.input_size, " but its input has size ", dim));
    }
    CTXEMBED_ASSIGN_OR_RETURN(auto module,
                              RecurrentModule::Create(m, *weights));
    dim = module->output_size();
    parts.push_back(ModuleName(m));
    t->modules_.push_back(std::move(module));
  }
  if (config.transformer) {
    const BertConfig& b = *config.transformer;
    if (!config.encoder.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "tower ", name, ": a transformer cannot follow recurrent modules"));
    }
    if (b.hidden_size != dim) {
      return absl::InvalidArgumentError(
          absl::StrCat("tower ", name, ": hidden_size is ", b.hidden_size,
                       " but the word embeddings have size ", dim));
    }
    CTXEMBED_ASSIGN_OR_RETURN(t->transformer_,
                              BertEncoder::Create(b, *weights));
    parts.push_back(
        absl::StrCat("bert-L", b.num_hidden_layers, "-H", b.hidden_size));
  }
  t->token_dim_ = dim;
  t->architecture_ =
      parts.empty() ? "bag_of_vectors" : absl::StrJoin(parts, "+");
  CTXEMBED_RETURN_IF_ERROR(t->CreateSif(model_dir));
  if (config.projection) {
    CTXEMBED_ASSIGN_OR_RETURN(
        Linear p, Linear::Create(*config.projection, dim, *weights));
    dim = p.output_size();
    t->projection_ = std::move(p);
  }
  t->output_dim_ = dim;
  return t;
}

absl::StatusOr<std::unique_ptr<Tower>> Tower::FromVectors(
    const std::string& name, const TowerConfig& config,
    std::unique_ptr<const WordVectors> vectors) {
  if (!config.encoder.empty() || config.projection) {
    return absl::InvalidArgumentError(
        "Tower::FromVectors builds bags of vectors only");
  }
  std::unique_ptr<Tower> t(new Tower());
  t->name_ = name;
  t->config_ = config;
  t->vectors_ = std::move(vectors);
  t->token_dim_ = t->output_dim_ = t->vectors_->dim();
  t->architecture_ = "bag_of_vectors";
  CTXEMBED_RETURN_IF_ERROR(t->CreateSif(""));
  return t;
}

absl::Status Tower::CreateSif(const std::string& model_dir) {
  const bool asked = config_.sif || config_.pooling == Pooling::kSif;
  if (!asked && !vectors_->has_counts()) return absl::OkStatus();
  absl::StatusOr<std::unique_ptr<SifWeights>> sif = SifWeights::Create(
      config_.sif.value_or(SifConfig()), *vectors_, token_dim_, model_dir);
  if (!asked) {
    // Offered to requests where the word vectors record counts, and never a
    // reason to refuse a model that did not ask for it.
    if (sif.ok()) sif_ = *std::move(sif);
    return absl::OkStatus();
  }
  if (!sif.ok()) {
    return absl::Status(
        sif.status().code(),
        absl::StrCat("tower ", name_, ": ", sif.status().message()));
  }
  sif_ = *std::move(sif);
  return absl::OkStatus();
}

const Eigen::MatrixXf& Tower::Encode(absl::Span<const TokenList> sentences,
                                     bool want_last, TowerScratch& s) const {
  s.lengths.clear();
  for (const TokenList& tokens : sentences) {
    s.lengths.push_back(static_cast<int>(tokens.size()));
  }
  s.batch.Reset(s.lengths);
  Eigen::MatrixXf* x = &s.buffers[0];
  x->resize(vectors_->dim(), s.batch.total_tokens());
  int col = 0;
  for (const TokenList& tokens : sentences) {
    for (const std::string& token : tokens) {
      vectors_->Lookup(token, x->col(col++).data());
    }
  }
  if (transformer_ != nullptr) transformer_->Forward(s.batch, s.bert, x);
  for (size_t m = 0; m < modules_.size(); ++m) {
    Eigen::MatrixXf* y = &s.buffers[(m + 1) % 2];
    const bool top = m + 1 == modules_.size();
    modules_[m]->Forward(*x, s.batch, s.recurrent, y,
                         top && want_last ? &s.last : nullptr);
    x = y;
  }
  return *x;
}

const Eigen::MatrixXf& Tower::EncodeTokens(
    absl::Span<const TokenList> sentences, TowerScratch& s) const {
  return Encode(sentences, false, s);
}

void Tower::Embed(absl::Span<const TokenList> sentences, Pooling pooling,
                  TowerScratch& s, Eigen::MatrixXf* out) const {
  const bool last = pooling == Pooling::kLast;
  const Eigen::MatrixXf& tokens = Encode(sentences, last, s);
  const int n = static_cast<int>(sentences.size());
  if (last) {
    s.pooled = s.last;
  } else {
    s.pooled.resize(token_dim_, n);
    for (int i = 0; i < n; ++i) {
      const auto cols = tokens.middleCols(s.batch.offset(i), s.batch.length(i));
      if (pooling == Pooling::kSif) {
        sif_->Pool(cols, sentences[i], s.pooled.col(i));
      } else {
        Pool(cols, pooling, s.pooled.col(i));
      }
    }
  }
  if (projection_) {
    projection_->Apply(s.pooled, out);
  } else {
    *out = s.pooled;
  }
  if (config_.normalize) {
    for (int i = 0; i < n; ++i) NormalizeL2(out->col(i));
  }
}

}  // namespace ctxembed
