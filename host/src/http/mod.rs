//! The HTTP edge: the route table, extractors, middleware, health and the OpenAPI document.

pub mod assets;
pub mod client;
pub mod console;
pub mod examples;
pub mod extract;
pub mod health;
pub mod metrics;
pub mod middleware;
pub mod pagination;
pub mod rate;
pub mod router;
