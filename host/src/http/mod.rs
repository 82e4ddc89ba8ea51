//! The HTTP edge: the route table, extractors, middleware, health and the OpenAPI document.

pub mod client;
pub mod extract;
pub mod health;
pub mod middleware;
pub mod pagination;
pub mod rate;
pub mod router;
