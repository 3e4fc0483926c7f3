//! Drover's control plane: a deterministic state machine over API objects
//! (`state`), made durable in sled (`store`), served over gRPC and a JSON/HTTP
//! gateway on one port (`api`).

pub mod api;
pub mod auth;
pub mod command;
pub mod controllers;
pub mod encryption;
pub mod node_proxy;
pub mod replicated;
pub mod resource_metrics;
pub mod server;
pub mod state;
pub mod store;
pub mod ui;

pub use command::{ApplyError, Command};
pub use server::{Ready, Security, ServerConfig, serve};
pub use state::StateMachine;
pub use store::Store;
