//! Drover's multi-process end-to-end tests.
