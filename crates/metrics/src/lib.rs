//! Placeholder: filled by a later commit.
