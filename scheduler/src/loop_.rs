//! The scheduling loop.
