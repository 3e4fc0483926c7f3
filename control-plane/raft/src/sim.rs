//! Deterministic in-process network (tests only).
