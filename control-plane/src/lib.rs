//! Drover's control plane: state machine, durable store, API server.
