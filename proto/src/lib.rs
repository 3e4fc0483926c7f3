//! Drover's API contract: object types, validation, protobuf/gRPC definitions and a typed client.
