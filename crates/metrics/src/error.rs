//! The metrics crate's error type.

/// Everything that can go wrong when scoring predictions.
///
/// Every variant that comes from the caller's data carries the offending value and where it
/// sits (row and column of the row-major `[n, n_classes]` layout), so that a message can be
/// acted on without a debugger. Functions of this crate never panic on user data; they
/// return one of these.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Two inputs that must agree in length do not.
    #[error("{what}: expected {expected} values, got {got}")]
    ShapeMismatch {
        /// Which input is wrong (e.g. `"targets"`, `"thresholds"`, `"n_classes"`).
        what: &'static str,
        /// The length it should have.
        expected: usize,
        /// The length it has.
        got: usize,
    },
    /// A row-major `[n, n_classes]` buffer whose length is not a multiple of `n_classes`.
    #[error("{what}: {len} values do not form rows of n_classes = {n_classes}")]
    RaggedInput {
        /// Which input is wrong.
        what: &'static str,
        /// Its length.
        len: usize,
        /// The number of classes (columns) it should be a multiple of.
        n_classes: usize,
    },
    /// `n_classes` is 0.
    #[error("n_classes must be at least 1")]
    ZeroClasses,
    /// There is nothing to score (no rows, or a streaming metric that saw no batch).
    #[error("{what}: empty input, nothing to score")]
    EmptyInput {
        /// What was empty.
        what: &'static str,
    },
    /// A probability that is NaN, infinite or outside `[0, 1]` (logits passed where
    /// probabilities are expected end up here too).
    #[error("probs[{row}, {col}] = {value} is not a probability in [0, 1]")]
    InvalidProbability {
        /// Row (sample) index.
        row: usize,
        /// Column (class) index.
        col: usize,
        /// The value found.
        value: f32,
    },
    /// A target that is neither `0.0` nor `1.0`.
    #[error("targets[{row}, {col}] = {value} is not 0 or 1")]
    NotBinaryTarget {
        /// Row (sample) index.
        row: usize,
        /// Column (class) index.
        col: usize,
        /// The value found.
        value: f32,
    },
    /// A single-label metric got a target row that is not one-hot.
    #[error("targets row {row} has {ones} ones; single-label metrics need exactly one")]
    NotOneHot {
        /// Row (sample) index.
        row: usize,
        /// How many ones the row has.
        ones: usize,
    },
    /// A threshold that is NaN or outside `[0, 1]`.
    #[error("threshold {value} is not in [0, 1]")]
    InvalidThreshold {
        /// The value given.
        value: f32,
    },
    /// An F-beta `beta` that is negative, NaN, or so large that `beta²` overflows.
    #[error("beta = {value} must be finite and >= 0")]
    InvalidBeta {
        /// The value given.
        value: f64,
    },
    /// A top-k `k` of 0.
    #[error("top-k accuracy needs k >= 1, got k = {k}")]
    InvalidK {
        /// The value given.
        k: usize,
    },
    /// A threshold grid with no values.
    #[error("the threshold grid is empty")]
    EmptyGrid,
    /// ROC-AUC is undefined for every label: none has both positive and negative targets.
    #[error("ROC-AUC is undefined: none of the {n_classes} labels has both classes")]
    AucUndefined {
        /// The number of labels.
        n_classes: usize,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
